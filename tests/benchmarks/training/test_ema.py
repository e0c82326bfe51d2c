"""The EMA's warm-up count (train.ema_offset) and its starting weights (train.ema_init)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.config.train_config import TrainConfig
from benchmarks.training.ema import EMA
from benchmarks.training.lightning_module import TrainingModule


def _scalar(value: float) -> nn.Linear:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


@pytest.mark.parametrize(
    ("offset", "decays"),
    [
        (0, [1 / 10, 2 / 11, 3 / 12]),  # n = the updates before this one
        (1, [2 / 11, 3 / 12, 4 / 13]),  # n counts this one too (num_updates += 1 first)
    ],
)
def test_warm_up_decays_at_the_first_three_updates(offset, decays):
    model = _scalar(0.0)
    ema = EMA(model, decay=0.9999, offset=offset)
    assert [ema.decay_at(n) for n in range(3)] == pytest.approx(decays, abs=0, rel=1e-15)
    shadow = 0.0
    for value, d in zip([3.0, 5.0, 7.0], decays, strict=True):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        shadow = d * shadow + (1 - d) * value
        assert ema.shadow_0.item() == pytest.approx(shadow, rel=1e-6)
    # offset 0, by hand: 0.9 * 3 = 2.7; 2/11 * 2.7 + 9/11 * 5 = 4.58...; then 1/4 x + 3/4 7
    if offset == 0:
        assert ema.shadow_0.item() == pytest.approx(0.25 * (5.4 / 11 + 45 / 11) + 5.25)
    assert min(0.9, (1 + 1000) / (10 + 1000)) == EMA(model, 0.9, offset=offset).decay_at(1000)


def test_an_ema_started_from_random_weights_mixes_them_with_the_loaded_ones():
    # The network was built with random weights w_r, then the upstream's w_u were loaded;
    # bd3lms's EMA (offset 1) holds w_r, so its first update gives 2/11 w_r + 9/11 w_u.
    w_r = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    w_u = torch.tensor([[1.0, 3.0], [-2.0, 0.0]])
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(w_u)
    from_random = EMA(model, 0.9999, offset=1, start={"weight": w_r})
    from_weights = EMA(model, 0.9999, offset=1)
    assert torch.equal(from_random.shadow_0, w_r) and torch.equal(from_weights.shadow_0, w_u)
    from_random.update(model)
    from_weights.update(model)
    by_hand = torch.tensor([[1 / 11 + 9 / 11, -2 / 11 + 27 / 11], [4 / 11 - 18 / 11, 0.5 / 11]])
    assert torch.allclose(from_random.shadow_0, by_hand, rtol=0, atol=1e-6)
    assert torch.equal(from_weights.shadow_0, w_u)  # w_u mixed with itself


def test_the_training_module_builds_its_ema_from_the_given_start():
    model = _scalar(4.0)
    cfg = TrainConfig(ema=0.5, ema_offset=1, ema_init="random")
    start = {"weight": torch.ones(1, 1)}
    module = TrainingModule(model, cfg, 0, sampler=None, run_id="x", ema_start=start)
    assert module.ema.offset == 1 and module.ema.shadow_0.item() == 1.0
    assert TrainingModule(model, cfg, 0, None, "x").ema.shadow_0.item() == 4.0


def test_a_start_that_does_not_fit_the_model_is_an_error():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="EMA start: no weights for bias"):
        EMA(model, 0.9, start={"weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"EMA start: weight has shape \(2,\), the model's"):
        EMA(model, 0.9, start={"weight": torch.zeros(2), "bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="EMA offset must be 0 or 1, got 2"):
        EMA(model, 0.9, offset=2)
