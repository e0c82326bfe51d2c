"""The learning-rate schedule, weight-decay groups and run ids of TrainConfig."""

from __future__ import annotations

import math

import pytest
from torch import nn

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import deep_merge
from benchmarks.config.run_config import RunConfig
from benchmarks.config.train_config import TrainConfig
from benchmarks.core import ConfigError
from benchmarks.training.lightning_module import TrainingModule


def test_constant_schedule_is_the_linear_warm_up_then_one():
    cfg = TrainConfig(steps=10, warmup_steps=4)
    assert [cfg.lr_factor(n) for n in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert TrainConfig(steps=3).lr_factor(0) == 1.0  # no warm-up


def test_cosine_schedule_reaches_min_lr_at_the_last_step():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, lr_decay="cosine", min_lr=1e-4)
    assert cfg.lr_factor(4) == pytest.approx(0.5)  # still warming up
    assert cfg.lr_factor(9) == pytest.approx(1.0)  # the first step at the full lr
    assert cfg.lr_factor(54) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way: p = 45 / 90
    assert cfg.lr_factor(99) == pytest.approx(0.1)  # the last step: min_lr
    factors = [cfg.lr_factor(n) for n in range(9, 100)]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))
    with pytest.raises(ConfigError, match="train.min_lr"):
        TrainConfig(lr=1e-3, min_lr=2e-3)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.lin = nn.Linear(3, 3)
        self.norm = nn.LayerNorm(3)


def _optimizer(cfg: TrainConfig):
    module = TrainingModule(_Net(), cfg, 0, sampler=None, run_id="x")
    return module.configure_optimizers()


def test_matrices_only_weight_decay_leaves_biases_and_norm_gains_alone():
    cfg = TrainConfig(steps=10, weight_decay=0.1, weight_decay_on="matrices")
    out = _optimizer(cfg)
    decayed, plain = out["optimizer"].param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert sorted(p.shape for p in decayed["params"]) == [(3, 3), (5, 3)]
    assert len(plain["params"]) == 3  # the linear bias, the norm's weight and bias
    (group,) = _optimizer(TrainConfig(steps=10, weight_decay=0.1))["optimizer"].param_groups
    assert len(group["params"]) == 5 and group["weight_decay"] == 0.1


def test_the_scheduler_follows_lr_factor():
    cfg = TrainConfig(steps=20, warmup_steps=5, lr=1e-2, lr_decay="cosine", min_lr=1e-3)
    out = _optimizer(cfg)
    optimizer, schedule = out["optimizer"], out["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([1e-2 * cfg.lr_factor(n) for n in range(20)])
    assert seen[-1] == pytest.approx(1e-3) and not math.isnan(sum(seen))


# toy2d's cpu scale as it stood before train.lr_decay, min_lr, weight_decay_on and
# model.masking existed.
OLD_TOY_CPU = {
    "model": {"backbone": {"dropout": 0.1}, "masking": "independent"},
    "train": {
        "steps": 1500,
        "checkpoint_every": 500,
        "lr": 0.001,
        "lr_decay": "constant",
        "min_lr": 0.0,
    },
    "task": {"eval_samples": 4096, "eval_passes": 32},
}


def test_settings_added_later_leave_the_run_ids_of_older_configs_alone():
    (config,) = load_experiment("toy2d").resolve("cpu", OLD_TOY_CPU, ["mdm"])
    assert not {"lr_decay", "min_lr", "weight_decay_on"} & set(config.train.math_dict())
    assert "masking" not in config.to_dict()["model"]
    assert config.run_id == "a14ec821576d"  # its id before those settings existed
    cosine = load_experiment("toy2d").resolve(
        "cpu", deep_merge(OLD_TOY_CPU, {"train": {"lr_decay": "cosine"}}), ["mdm"]
    )
    assert cosine[0].run_id != config.run_id


def test_task_settings_added_later_leave_the_image_runs_ids_alone():
    config = load_experiment("image-cpu").resolve("cpu", None, ["prime-l2"])[0]
    params = config.task.params
    later = set(type(params).LATER_FIELDS)
    written = set(config.to_dict()["task"])
    defaults = type(params)()
    at_default = {f for f in later if getattr(params, f) == getattr(defaults, f)}
    assert at_default and not at_default & written  # e.g. inception_score, imagenet_batches
    assert later - at_default <= written  # the ones the file sets are in the id
    # its id before inception_score and imagenet_batches existed (float32, as in tests)
    assert config.run_id == "b0df9ddfc907"
    stored = RunConfig.from_dict(config.to_dict())  # a stored config reads back whole
    assert stored.task.params == config.task.params and stored.run_id == config.run_id
    more = load_experiment("image-cpu").resolve(
        "cpu", {"task": {"inception_score": True}}, ["prime-l2"]
    )
    assert more[0].run_id != config.run_id and more[0].to_dict()["task"]["inception_score"]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (1, [1 / 4, 2 / 4, 3 / 4, 1.0, 1.0]),  # lr (n + 1) / W: the full lr from step W - 1
        (0, [0.0, 1 / 4, 2 / 4, 3 / 4, 1.0]),  # lr n / W (transformers): 0 at the first step
    ],
)
def test_warm_up_offset_gives_the_closed_form_learning_rates(offset, expected):
    cfg = TrainConfig(steps=10, warmup_steps=4, lr=2e-3, warmup_offset=offset)
    assert [cfg.lr_factor(n) for n in range(5)] == expected
    out = _optimizer(cfg)
    optimizer, schedule = out["optimizer"], out["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([2e-3 * f for f in expected[:3]])  # lr_0, lr_1, lr_2
    assert TrainConfig(steps=3, warmup_offset=offset).lr_factor(0) == 1.0  # no warm-up


def test_cosine_starts_at_the_first_full_step_of_either_warm_up():
    cfg = TrainConfig(steps=21, warmup_steps=10, lr_decay="cosine", warmup_offset=0)
    assert cfg.lr_factor(9) == pytest.approx(0.9)  # still warming up: 9 / 10
    assert cfg.lr_factor(10) == 1.0  # the first step at the full lr
    assert cfg.lr_factor(15) == pytest.approx(0.5)  # half-way: p = 5 / 10
    assert cfg.lr_factor(20) == pytest.approx(0.0)  # the last step: min_lr = 0


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("warmup_offset", 2, "train.warmup_offset: expected 0 or 1, got 2"),
        ("ema_offset", -1, "train.ema_offset: expected 0 or 1, got -1"),
        ("ema_init", "upstream", "train.ema_init: expected one of 'weights', 'random'"),
    ],
)
def test_bad_warm_up_and_ema_conventions_are_named(field, value, match):
    raw = {"experiment": "x", "variant": "a", "scale": "cpu", "task": {"name": "toy2d"}}
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict({**raw, "train": {field: value}})
    with pytest.raises(ConfigError, match="train.warmup_offset: expected 0 or 1, got True"):
        TrainConfig(warmup_offset=True)  # built in code, past the YAML checks


def test_the_conventions_enter_the_run_id_only_off_their_defaults():
    (config,) = load_experiment("toy2d").resolve("cpu", None, ["mdm"])
    assert not {"warmup_offset", "ema_offset", "ema_init"} & set(config.train.math_dict())
    for field, value in (("warmup_offset", 0), ("ema_offset", 1), ("ema_init", "random")):
        (other,) = load_experiment("toy2d").resolve("cpu", {"train": {field: value}}, ["mdm"])
        assert other.train.math_dict()[field] == value and other.run_id != config.run_id
