"""The text tasks' network_precision (the network's calls of evaluation and sampling under
bf16 autocast) and the DiT's conditioning in float32 under any autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import baselines.ar
import prime.diffusion
import prime.sampling.proposals
import prime.sampling.sampler
from baselines import AutoregressiveLM
from benchmarks.config.precision import CPU_BF16_ENV
from benchmarks.config.run_config import ComponentConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.tasks.likelihood import block_nll
from benchmarks.tasks.network_autocast import network_autocast
from benchmarks.tasks.text_params import TextLMParams
from benchmarks.tasks.text_samples import draw_text_samples
from benchmarks.tasks.zero_shot import ZeroShotParams
from prime import MaskedDiffusion, SamplerConfig, SubTokenizer
from prime.backbones import DIT_PRESETS, DiT

CPU = torch.device("cpu")
BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


def _dit(ell: int, out_dim: int, *, causal: bool = False) -> DiT:
    """A cpu-preset DiT whose zero-initialised layers (adaLN, head) are filled in, so that
    every layer acts on its output."""
    torch.manual_seed(0)
    base = out_dim if ell == 1 else 8
    net = DiT(DIT_PRESETS["cpu"], base=base, ell=ell, out_dim=out_dim, causal=causal)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "modulation" in name or name.startswith("head"):
                p.normal_(0.0, 0.3)
    return net.eval()


def _mdm() -> MaskedDiffusion:
    return MaskedDiffusion(_dit(2, 64), SubTokenizer(64, 2), carry_over=True).eval()


def _ar() -> AutoregressiveLM:
    return AutoregressiveLM(_dit(1, 64, causal=True), 64, bos_id=0).eval()


def _watch(model: torch.nn.Module) -> list[tuple[bool, torch.dtype]]:
    """(autocast on, the first block's qkv output dtype) of every network call."""
    calls = []
    model.network.blocks[0].qkv.register_forward_hook(
        lambda m, a, out: calls.append((torch.is_autocast_enabled("cpu"), out.dtype))
    )
    return calls


def _spy(monkeypatch, module, name: str, seen: list) -> None:
    """Replace ``module.name`` by a pass-through that records (autocast on, first arg's
    dtype) of each call."""
    original = getattr(module, name)

    def spy(first, *args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), first.dtype))
        return original(first, *args, **kwargs)

    monkeypatch.setattr(module, name, spy)


def test_the_dit_conditioning_is_float32_inside_a_bf16_autocast():
    net = _dit(2, 64)
    y = torch.randint(0, 9, (2, 8, 2))
    conds, dtypes = [], {}
    net.time.register_forward_hook(lambda m, a, out: conds.append(out))
    net.blocks[0].qkv.register_forward_hook(lambda m, a, out: dtypes.update(qkv=out.dtype))
    net.blocks[1].modulation.register_forward_hook(lambda m, a, out: dtypes.update(mod=out.dtype))
    with torch.no_grad():
        reference = net.time(torch.zeros(2))  # float32, no autocast
        with BF16:
            out = net(y)
            alone = net.time(torch.zeros(2))  # the MLP by itself under autocast: bf16
    assert alone.dtype == torch.bfloat16
    # Inside the DiT the MLP ran with autocast off: exactly the float32 conditioning.
    assert conds[1].dtype == torch.float32 and torch.equal(conds[1], reference)
    # The blocks (their adaLN layers too) and the output layer compute in bf16.
    assert dtypes == {"qkv": torch.bfloat16, "mod": torch.bfloat16}
    assert out.dtype == torch.bfloat16


def test_bfloat16_likelihood_calls_the_network_under_autocast_and_sums_in_float64(monkeypatch):
    model = _mdm()
    blocks = np.random.default_rng(0).integers(0, 64, size=(4, 8))
    calls, sums = _watch(model), []
    _spy(monkeypatch, prime.diffusion, "grid_softmax", sums)
    run = dict(passes=1, batch=2, seed=5, device=CPU)
    half = block_nll(model, blocks, precision="bfloat16", **run)
    assert calls == [(True, torch.bfloat16)] * 2
    # The estimators after the call: float32 logits, autocast off.
    assert sums == [(False, torch.float32)] * 2
    assert "forward" not in model.network.__dict__  # the network's own forward is back
    calls.clear()
    full = block_nll(model, blocks, precision="float32", **run)
    assert calls == [(False, torch.float32)] * 2
    assert torch.equal(full["valid_bound"], block_nll(model, blocks, **run)["valid_bound"])
    for name in ("published", "valid_bound"):
        assert half[name].dtype == full[name].dtype == torch.float64
        assert torch.allclose(half[name], full[name], rtol=0.05)
        assert not torch.equal(half[name], full[name])


def test_the_exact_ar_nll_under_bfloat16_is_the_bf16_networks_by_hand():
    model = _ar()
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 64, size=(3, 8)))
    run = dict(passes=1, batch=3, seed=0, device=CPU)

    def by_hand(logits: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits.float(), -1).gather(-1, x[:, 1:, None]).squeeze(-1)
        return -log_p.double().sum(-1)

    with torch.no_grad():
        exact32 = by_hand(model.network(x[:, :-1, None], None))
        with BF16:
            logits16 = model.network(x[:, :-1, None], None)
    exact16 = by_hand(logits16)
    full = block_nll(model, x.numpy(), precision="float32", **run)["exact"]
    half = block_nll(model, x.numpy(), precision="bfloat16", **run)["exact"]
    assert half.dtype == full.dtype == torch.float64
    assert torch.allclose(full, exact32, rtol=0, atol=1e-5)
    assert torch.allclose(half, exact16, rtol=0, atol=1e-5)
    assert (half - full).abs().max() > 1e-3  # the bf16 network, not the float32 one


def test_bfloat16_sampling_keeps_float64_probabilities(monkeypatch):
    config = SamplerConfig(steps=4, top_p=0.9, sampling_dtype=torch.float64)
    model = _mdm()
    calls, logits, probs = _watch(model), [], []
    _spy(monkeypatch, prime.sampling.sampler, "propose", logits)
    _spy(monkeypatch, prime.sampling.proposals, "top_p_filter", probs)
    drawn = draw_text_samples(model, 2, 0, 8, config, 7, CPU, "bfloat16")
    assert calls and set(calls) == {(True, torch.bfloat16)}
    # The sampler sees float32 logits, its probabilities (and noise) float64, no autocast.
    assert logits and set(logits) == {(False, torch.float32)}
    assert probs and set(probs) == {(False, torch.float64)}
    assert drawn.tokens.shape == (2, 8) and int(drawn.tokens.max()) < 64

    ar, ar_probs = _ar(), []
    ar_calls = _watch(ar)
    _spy(monkeypatch, baselines.ar, "top_p_filter", ar_probs)
    draw_text_samples(ar, 2, 0, 5, config, 7, CPU, "bfloat16")
    assert len(ar_calls) == 4 and set(ar_calls) == {(True, torch.bfloat16)}
    assert set(ar_probs) == {(False, torch.float64)}


def test_float32_sampling_is_untouched():
    config = SamplerConfig(steps=4, top_p=0.9, sampling_dtype=torch.float64)
    model = _mdm()
    calls = _watch(model)
    drawn = draw_text_samples(model, 2, 0, 8, config, 7, CPU, "float32")
    assert set(calls) == {(False, torch.float32)}
    before = model.sample(2, 8, config, generator=torch.Generator().manual_seed(7))
    assert torch.equal(drawn.tokens, before.tokens)


def test_the_network_gets_its_forward_back_after_an_error():
    model = _mdm()
    with pytest.raises(RuntimeError, match="stop"), network_autocast(model, "bfloat16", CPU):
        assert "forward" in model.network.__dict__
        raise RuntimeError("stop")
    assert "forward" not in model.network.__dict__
    with pytest.raises(ValueError, match="expected float32 or bfloat16"):
        with network_autocast(model, "float16", CPU):
            pass


@pytest.mark.parametrize("params", [TextLMParams, ZeroShotParams])
def test_the_setting_resolves_validates_and_keeps_old_run_ids(params, monkeypatch):
    assert "network_precision" not in ComponentConfig("t", params()).to_dict()
    on = ComponentConfig("t", params(network_precision="bfloat16")).to_dict()
    assert on["network_precision"] == "bfloat16"
    with pytest.raises(ConfigError, match="task.network_precision: expected one of"):
        build_dataclass(params, {"network_precision": "float16"}, "task")
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert params(network_precision="fastest").network_precision == "float32"
    if not torch.cuda.is_available():  # a GPU answers for itself
        monkeypatch.setenv(CPU_BF16_ENV, "1")
        assert params(network_precision="fastest").network_precision == "bfloat16"
