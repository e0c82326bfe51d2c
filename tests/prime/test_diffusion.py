import pytest
import torch
from torch import nn

from baselines import build_mdm
from benchmarks.training.ema import EMA
from prime import MaskedDiffusion, SamplerConfig, SubTokenizer, subs_log_probs
from prime.backbones import ToyMLP


def _toy(ell: int, base: int, out_dim: int, seed: int = 0) -> ToyMLP:
    torch.manual_seed(seed)
    return ToyMLP(3, ell, base, out_dim, emb_dim=8, hidden=16, depth=1, dropout=0.0)


def test_mdm_baseline_is_prime_with_ell_one():
    c = 20
    mdm = build_mdm(_toy(1, c, c), c, "loglinear")
    prime = MaskedDiffusion(_toy(1, c, c), SubTokenizer(c, 1), "loglinear", objective="published")
    assert mdm.codec.ell == 1 and mdm.codec.mask_id == c
    x0 = torch.randint(0, c, (16, 3), generator=torch.Generator().manual_seed(1))
    loss_mdm, _ = mdm.training_loss(x0, torch.Generator().manual_seed(2))
    loss_prime, _ = prime.training_loss(x0, torch.Generator().manual_seed(2))
    assert torch.allclose(loss_mdm, loss_prime)
    t, y_t = prime.corrupt(x0, torch.Generator().manual_seed(2))
    both = prime.losses(x0, t, y_t)
    assert torch.allclose(both.published, both.valid_bound)
    assert torch.allclose(loss_prime, both.published.mean())

    # ... and both equal MDLM's SUBS loss written out from the same network outputs.
    t, x_t = mdm.corrupt(x0, torch.Generator().manual_seed(3))
    logits = mdm.network(x_t, t)
    subs = subs_log_probs(logits, x_t.squeeze(-1), mask_id=c)
    expected = -subs.gather(-1, x0.unsqueeze(-1)).squeeze(-1) / t.unsqueeze(-1)
    assert torch.allclose(mdm.losses(x0, t, x_t).valid_bound, expected, atol=1e-6)


def test_independent_decoder_losses_coincide_with_carry_over():
    codec = SubTokenizer(50, 2)  # b = 8
    model = MaskedDiffusion(
        _toy(2, 8, 16), codec, "linear", decoder="independent", objective="valid"
    )
    x0 = torch.randint(0, 50, (8, 3), generator=torch.Generator().manual_seed(0))
    loss, parts = model.training_loss(x0, torch.Generator().manual_seed(1))
    t, y_t = model.corrupt(x0, torch.Generator().manual_seed(1))
    both = model.losses(x0, t, y_t)
    assert torch.allclose(both.published, both.valid_bound)
    assert torch.allclose(parts["valid"], both.valid_bound)
    assert loss.requires_grad and torch.isfinite(loss)
    result = model.sample(4, 3, SamplerConfig(steps=5), generator=torch.Generator().manual_seed(2))
    assert result.tokens.shape == (4, 3)
    assert result.nfe == 6  # the toy network is time-conditioned: no caching


def test_model_bad_settings_are_named():
    codec = SubTokenizer(10, 1)
    with pytest.raises(ValueError, match="decoder"):
        MaskedDiffusion(nn.Identity(), codec, decoder="both")
    with pytest.raises(ValueError, match="objective"):
        MaskedDiffusion(nn.Identity(), codec, objective="elbo")
    with pytest.raises(ValueError, match=r"ToyMLP expects y_t of shape \(B, 3, 1\)"):
        _toy(1, 10, 10)(torch.zeros(2, 3, 2, dtype=torch.long), torch.zeros(2))


def test_ema_follows_the_warm_up_formula():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    shadow = 0.0
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * value
    with ema.applied_to(model):
        assert model.weight.item() == pytest.approx(shadow)
    assert model.weight.item() == 4.0
    restored = EMA(model, 0.9)
    restored.load_state_dict(ema.state_dict())
    assert int(restored.num_updates) == 4
