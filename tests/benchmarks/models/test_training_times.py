"""Training times from 0 (model.train_time_eps): the authors' image training draws
s ~ U(0, 1); the likelihood keeps its own window from time_eps."""

import math

import pytest
import torch

import prime.diffusion
from baselines import build_mdm
from benchmarks.config.run_config import ComponentConfig
from benchmarks.core import ConfigError
from benchmarks.models.mdm import MDMParams
from benchmarks.models.mdm_prime import PrimeParams
from prime import MaskedDiffusion, SubTokenizer, mask_subtokens


class _Fixed(torch.nn.Module):
    """Logits that ignore the input: ``value`` (C,) at every token."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = torch.nn.Parameter(value)

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.value.expand(*y_t.shape[:-1], -1).clone()


def _at_time_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every training time drawn is exactly 0."""

    def zeros(batch_size: int, **kwargs: object) -> torch.Tensor:
        assert kwargs["eps"] == 0.0  # the model asks for the window [0, 1)
        return torch.zeros(batch_size)

    monkeypatch.setattr(prime.diffusion, "sample_times", zeros)


def test_the_cross_entropy_at_t_zero_is_finite_and_exact(monkeypatch):
    _at_time_zero(monkeypatch)
    x0 = torch.randint(0, 256, (3, 12))
    # MDM (SUBS): at t = 0 nothing is masked and every revealed token is kept: loss 0.
    mdm = build_mdm(
        _Fixed(torch.randn(256)), 256, "polynomial", objective="cross_entropy", train_time_eps=0.0
    )
    loss, parts = mdm.training_loss(x0, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0 and torch.equal(parts["cross_entropy"], torch.zeros(3, 12))
    # Prime ell = 2 without carry-over scores every token with the full softmax: uniform
    # logits give log 256 per token, the value of the authors' formula at s = 1.
    prime = MaskedDiffusion(
        _Fixed(torch.zeros(256)),
        SubTokenizer(256, 2),
        "polynomial",
        carry_over=False,
        objective="cross_entropy",
        train_time_eps=0.0,
    )
    loss, _ = prime.training_loss(x0, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(math.log(256), abs=1e-6)


def test_a_weighted_loss_at_t_zero_is_0_times_inf():
    # Why train_time_eps = 0 is refused for the weighted objectives: w(0) is infinite
    # where nothing is masked.
    model = build_mdm(_Fixed(torch.randn(256)), 256, "polynomial", objective="valid")
    x0 = torch.randint(0, 256, (2, 5))
    t = torch.zeros(2)
    y_t = mask_subtokens(model.codec.encode(x0), model.schedule.alpha(t.double()), 256)
    assert torch.equal(y_t[..., 0], x0)
    assert torch.isnan(model.losses(x0, t, y_t).valid_bound).all()
    for params in (MDMParams, PrimeParams):
        with pytest.raises(ConfigError, match="model.train_time_eps: 0 needs an unweighted"):
            params(objective="valid", train_time_eps=0.0)
    with pytest.raises(ConfigError, match=r"model.train_time_eps: must be in \[0, 1\)"):
        MDMParams(objective="cross_entropy", train_time_eps=1.0)


def test_training_times_cover_zero_to_one_and_the_likelihood_keeps_its_eps():
    x0 = torch.zeros(4096, 1, dtype=torch.long)

    def times(**window: float) -> torch.Tensor:
        model = build_mdm(
            _Fixed(torch.zeros(4)), 4, "polynomial", objective="cross_entropy", **window
        )
        t, _ = model.corrupt(x0, torch.Generator().manual_seed(0))
        return t

    t = times(train_time_eps=0.0)
    # One time per stratum [k / n, (k + 1) / n) of [0, 1): the first lies below 1 / n.
    assert t.min() < 1 / 4096 and t.max() < 1.0
    assert times().min() >= 1e-3  # the default: from time_eps
    model = build_mdm(_Fixed(torch.zeros(4)), 4, objective="cross_entropy", train_time_eps=0.0)
    assert model.time_eps == 1e-3 and model.evaluation_card()["time_window"] == "[0.001, 1]"


def test_train_time_eps_leaves_the_run_ids_of_existing_runs():
    assert "train_time_eps" not in ComponentConfig("mdm", MDMParams()).to_dict()
    assert (
        ComponentConfig("mdm", MDMParams(objective="cross_entropy", train_time_eps=0.0)).to_dict()[
            "train_time_eps"
        ]
        == 0
    )
