"""BD3-LM's ignore_bos: position 0 given (never masked) and unscored, in training noise,
losses, the likelihood and sampling."""

from __future__ import annotations

import math

import pytest
import torch

from baselines import BlockDiffusion
from benchmarks.config.run_config import ComponentConfig
from benchmarks.core import ConfigError, DataSpec
from benchmarks.models.backbone_params import DiTParams
from benchmarks.models.bd3lm import BD3LM, BD3LMParams
from benchmarks.tasks.likelihood import scored_tokens
from prime import SamplerConfig, SubTokenizer, expected_idle_steps
from tests.baselines.test_block_diffusion import _Blank, _network, _z
from tests.helpers import ExactPosterior

# p(x_0, x_1) over {0, 1}^2 in the order 00, 01, 10, 11.
TABLE = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)


class _ExactOneBlock(torch.nn.Module):
    """The exact posterior of TABLE behind the 2L-position interface, one block of L = 2
    (the noised half sees itself only)."""

    time_conditioned = False

    def __init__(self, data: ExactPosterior):
        super().__init__()
        self.data = data

    def forward(self, y, t=None, *, positions=None, mask=None, cache=None, outputs=None):
        return self.data.logits(y[:, : self.data.seq_len])[:, :outputs]


def _exact(ignore_bos: bool) -> BlockDiffusion:
    codec = SubTokenizer(2, 1)
    net = _ExactOneBlock(ExactPosterior(TABLE, codec, 2))
    return BlockDiffusion(net, codec, 2, "linear", ignore_bos=ignore_bos, bos_id=1)


def test_the_likelihood_is_that_of_the_rest_given_the_first_token():
    x0 = torch.tensor([[1, 0], [0, 1]])
    masked = torch.full((2, 2, 1), 2)  # the mask id: y_t all masked
    t = torch.full((2, 1), 0.5, dtype=torch.float64)  # w(t) = 1 / t = 2 (linear)
    given = _exact(ignore_bos=True).losses(x0, t, masked)
    # x = (1, 0): -log p(x_1 = 0 | x_0 = 1) = -log(0.3 / 0.7); x = (0, 1): -log(0.2 / 0.3).
    rest = torch.tensor([-math.log(0.3 / 0.7), -math.log(0.2 / 0.3)], dtype=torch.float64)
    for per_token in (given.published, given.valid_bound):
        assert torch.allclose(per_token[:, 0], torch.zeros(2, dtype=torch.float64))
        assert torch.allclose(per_token[:, 1], 2 * rest, rtol=1e-12)
    # Without it both positions are masked and scored: the marginals p(x_0), p(x_1).
    plain = _exact(ignore_bos=False).losses(x0, t, masked).valid_bound
    marginals = torch.tensor([[0.7, 0.4], [0.3, 0.6]], dtype=torch.float64)
    assert torch.allclose(plain, -2 * marginals.log(), rtol=1e-12)
    # The evaluation's draw at t = 1 masks every other token, w(1) = 1: the exact value.
    ones = torch.ones(2, 1, dtype=torch.float64)
    nll = _exact(ignore_bos=True).block_nll(x0, ones, torch.Generator().manual_seed(0))
    assert torch.allclose(nll["valid_bound"], rest, rtol=1e-12)
    assert scored_tokens(_exact(ignore_bos=True), 1024)["valid_bound"] == 1023
    assert scored_tokens(_exact(ignore_bos=False), 1024)["valid_bound"] == 1024


@pytest.mark.parametrize("resample", [False, True])
def test_position_0_is_never_masked_in_training_and_carries_no_loss(resample):
    codec = SubTokenizer(20, 2)
    window = (0.8, 1.0) if resample else None
    model = BlockDiffusion(
        _network(codec), codec, 4, ignore_bos=True, bos_id=0, window=window, resample=resample
    )
    x0 = torch.randint(0, 20, (64, 10), generator=torch.Generator().manual_seed(0))
    _, y_t = model.corrupt(x0, torch.Generator().manual_seed(1))
    assert torch.equal(y_t[:, 0], codec.encode(x0)[:, 0])
    assert bool((y_t[:, 1:] == codec.mask_id).any())
    loss, per_token = model.training_loss(x0, torch.Generator().manual_seed(2))
    (per_token,) = per_token.values()
    assert bool((per_token[:, 0] == 0).all()) and bool((per_token[:, 1:] != 0).any())
    assert torch.allclose(loss, per_token.sum() / per_token.numel())  # the mean over L


def test_samples_start_from_bos_and_reveal_one_token_fewer():
    codec = SubTokenizer(25, 2)
    model = BlockDiffusion(_network(codec, seed=2), codec, 3, ignore_bos=True, bos_id=7).double()
    config = SamplerConfig(steps=6, first_hitting=True)
    runs = [
        model.sample(2, 11, config, kv_cache=cached, generator=torch.Generator().manual_seed(9))
        for cached in (True, False)
    ]
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert bool((runs[0].tokens[:, 0] == 7).all())
    assert runs[0].nfe == 10 * 2  # one call per sub-token of tokens 1..10


def test_idle_steps_follow_the_closed_form_with_a_shorter_first_block():
    codec = SubTokenizer(16, 1)
    model = BlockDiffusion(_Blank(16), codec, 2, "linear", ignore_bos=True, bos_id=0)
    out = model.sample(
        4000, 4, SamplerConfig(steps=8), kv_cache=False, generator=torch.Generator().manual_seed(1)
    )
    first, second = (expected_idle_steps(8, n, 1, "linear", eps=1e-5) for n in (1, 2))
    assert abs(_z(out.idle_steps.double(), first + second)) < 4
    assert model.expected_idle_ratio(8, 4) == pytest.approx((first + second) / 16, rel=1e-12)


def test_the_setting_keeps_old_run_ids_and_reaches_the_model():
    assert "ignore_bos" not in ComponentConfig("bd3lm", BD3LMParams()).to_dict()
    spec = DataSpec(num_classes=30, seq_len=8, bos_id=29)
    cpu = DiTParams(preset="cpu")
    model = BD3LM.build(BD3LMParams(ignore_bos=True, backbone=cpu), spec)
    assert model.ignore_bos and model.first_token() == 29
    assert BD3LM.build(BD3LMParams(backbone=cpu), spec).first_token() is None
    with pytest.raises(ConfigError, match="model.ignore_bos: the task.s data has no BOS token"):
        BD3LM.build(BD3LMParams(ignore_bos=True, backbone=cpu), DataSpec(30, 8))
