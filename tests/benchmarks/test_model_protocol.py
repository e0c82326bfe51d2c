"""Every model answers the one protocol the harness uses (no isinstance in tasks)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.config.validation import build_dataclass
from benchmarks.core import DataSpec, Model
from benchmarks.registry import MODELS
from prime import SamplerConfig, SampleResult, sample_times

DATA = DataSpec(num_classes=64, seq_len=16, bos_id=0)
PARAMS = {
    "ar": {},
    "mdm": {},
    "prime": {"ell": 2},
    "bd3lm": {
        "block_size": 4,
        "backbone": {"name": "dit", "preset": "cpu", "time_conditioned": False},
    },
}


def _model(name: str) -> torch.nn.Module:
    entry = MODELS.get(name)
    params = {"backbone": {"name": "dit", "preset": "cpu"}, **PARAMS[name]}
    torch.manual_seed(0)
    return entry.build(build_dataclass(entry.Params, params, "model"), DATA).eval()


@pytest.mark.parametrize("name", list(PARAMS))
def test_every_model_trains_scores_blocks_and_samples_through_the_protocol(name):
    model = _model(name)
    assert isinstance(model, Model)
    x0 = torch.randint(0, DATA.num_classes, (3, DATA.seq_len))
    loss, _ = model.training_loss(x0, torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    k = model.time_draws(DATA.seq_len)
    t = None
    if k:
        t = sample_times(3 * k, eps=model.time_eps, generator=torch.Generator().manual_seed(1))
        t = t.view(3, k)[:, 0] if k == 1 else t.view(3, k)
    nll = model.block_nll(x0, t, torch.Generator().manual_seed(2))
    assert set(nll) == ({"exact"} if k == 0 else {"published", "valid_bound"})
    assert all(v.shape == (3,) and v.dtype == torch.float64 for v in nll.values())
    result = model.sample(2, DATA.seq_len, SamplerConfig(steps=4), generator=torch.Generator())
    assert isinstance(result, SampleResult) and result.tokens.shape == (2, DATA.seq_len)
    if k == 0:  # autoregressive: one call per generated token after BOS, never idle
        assert result.nfe == DATA.seq_len - 1 and int(result.idle_steps.sum()) == 0
        assert bool((result.tokens[:, 0] == DATA.bos_id).all())
        exact = model.token_nll(x0).double().sum(-1)
        assert torch.allclose(nll["exact"], exact)
    else:
        assert 1 <= result.nfe <= result.num_steps + model.num_blocks(DATA.seq_len)


def test_at_ell_1_the_published_estimator_is_the_valid_bound():
    model = _model("mdm")
    x0 = torch.randint(0, DATA.num_classes, (4, DATA.seq_len))
    t = sample_times(4, eps=model.time_eps, generator=torch.Generator().manual_seed(3))
    nll = model.block_nll(x0, t, torch.Generator().manual_seed(4))
    assert torch.allclose(nll["published"], nll["valid_bound"])
