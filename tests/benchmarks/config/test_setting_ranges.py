"""Settings that would fail inside a job fail at validation, naming the field and the
allowed range, before any MLflow run (or store) exists."""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pytest
import torch

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import parse_overrides
from benchmarks.config.run_config import SEED_MAX, RunConfig
from benchmarks.config.train_config import TrainConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.launch.preflight import validate
from benchmarks.registry import MODELS, TASKS
from benchmarks.streams import EVAL_STREAMS, eval_seed, idle_seed
from prime import SubTokenizer

# (experiment, variant, --set override, the field path and the allowed range the error
# must name). The first six passed validation and failed inside the job.
CASES = [
    ("toy2d", "mdm", "train.weight_decay=-1", "train.weight_decay: must be >= 0"),
    ("toy2d", "mdm", "train.betas=[2,3]", "train.betas[0]: must be in [0, 1)"),
    ("toy2d", "mdm", "seed=18446744073709551616", "seed: must be an integer in [0, 2^63 - 1]"),
    ("toy2d", "prime-l2-joint", "model.ell=64", "model.ell: must be in [1, 9]"),
    ("toy2d", "mdm", "task.gamma=.nan", "task.gamma: expected a finite number, got nan"),
    ("toy2d", "mdm", "model.time_eps=2", "model.time_eps: must be in [0, 1)"),
    ("toy2d", "mdm", "train.lr=.inf", "train.lr: expected a finite number, got inf"),
    ("toy2d", "mdm", "train.lr=1e6", "train.lr: must be in (0, 1]"),
    ("toy2d", "mdm", "train.grad_clip=.inf", "train.grad_clip: expected a finite number"),
    ("toy2d", "mdm", "train.weight_decay=.inf", "train.weight_decay: expected a finite"),
    ("toy2d", "mdm", "train.weight_decay=500", "train.weight_decay: must be < 1 / train.lr"),
    ("toy2d", "mdm", "seed=-1", "seed: must be an integer in [0, 2^63 - 1]"),
    ("toy2d", "mdm", "task.gamma=-200", "task.gamma: must be in [-100, 100]"),
    ("toy2d", "mdm", "task.sample_eps=1", "task.sample_eps: must be in [0, 1)"),
    ("toy2d", "mdm", "task.resolution=1", "task.resolution: must be >= 2"),
    ("toy2d", "prime-l2-joint", "model.ell=10", "model.ell: must be in [1, 9]"),
    ("image-cpu", "prime-l2", "model.ell=9", "model.ell: must be in [1, 8]"),
    ("image-cpu", "prime-l2", "model.backbone.dropout=2", "model.backbone.dropout: must be in"),
    ("image-cpu", "prime-l2", "task.time_warp=[1,-1,0]", "task.time_warp: time warp"),
    ("image-cpu", "prime-l2", "task.corrector=[-1,1,0]", "task.corrector: corrector strength"),
    ("image-cpu", "prime-l2", "model=null", "model: task 'image' needs a model"),
    ("table1-cpu", "bd3lm-l4", "model.block_size=1000", "model.block_size: 1000 exceeds"),
    ("idle-steps", "prime-l2", "task.ell=64", "task.ell: must be in [1, 16]"),
    ("idle-steps", "prime-l2", "task.eps=.nan", "task.eps: expected a finite number"),
]


def _resolve(experiment: str, variant: str, *overrides: str) -> list[RunConfig]:
    """What ``primebench run/sweep EXPERIMENT --variant V --set ...`` validates."""
    return load_experiment(experiment).resolve("cpu", parse_overrides(list(overrides)), [variant])


@pytest.mark.parametrize(("experiment", "variant", "override", "needle"), CASES)
def test_a_setting_out_of_range_fails_at_validation_naming_field_and_range(
    experiment, variant, override, needle
):
    with pytest.raises(ConfigError) as caught:
        _resolve(experiment, variant, override)
    assert needle in str(caught.value)


def test_the_range_of_a_non_finite_value_is_named_and_each_range_says_why():
    with pytest.raises(ConfigError, match=r"train\.lr: .*inf \(allowed: \(0, 1\]\)"):
        _resolve("toy2d", "mdm", "train.lr=.inf")
    with pytest.raises(ConfigError, match="an AdamW step moves each weight by about lr"):
        _resolve("toy2d", "mdm", "train.lr=1.000001")
    with pytest.raises(ConfigError, match=r"train\.lr: expected a finite number"):
        _resolve("toy2d", "mdm", f"train.lr={10**400}")  # an integer past float's range


def test_values_at_the_edges_of_each_range_are_accepted_and_left_as_they_are():
    edges = ["train.lr=1", "train.betas=[0,0.999999]", "train.weight_decay=0", f"seed={SEED_MAX}"]
    (config,) = _resolve("toy2d", "mdm", *edges, "model.time_eps=0", "task.gamma=-100")
    assert config.train.lr == 1.0 and config.train.betas == (0.0, 0.999999)
    assert config.seed == SEED_MAX and config.model.params.time_eps == 0.0
    assert config.task.params.gamma == -100.0
    (prime,) = _resolve("toy2d", "prime-l2-joint", "model.ell=9")
    assert prime.model.params.ell == 9


def _holds_float(tp: object) -> bool:
    return tp is float or any(_holds_float(a) for a in typing.get_args(tp))


def _typed_configs() -> list[tuple[str, type, object]]:
    """(path, dataclass, annotation) of every float-holding field of the typed configs."""
    entries = [("train", TrainConfig)]
    entries += [(f"model[{n}]", MODELS.get(n).Params) for n in MODELS.names()]
    entries += [(f"task[{n}]", TASKS.get(n).Params) for n in TASKS.names()]
    out = []
    for where, cls in entries:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init and _holds_float(hints[f.name]):
                out.append((f"{where}.{f.name}", cls, hints[f.name]))
    return out


def _filled(tp: object, bad: float) -> object:
    """A value of annotation ``tp`` (a float or a tuple of floats, optional) that is ``bad``."""
    inner = next(a for a in (*typing.get_args(tp), tp) if a is not type(None))
    if typing.get_origin(tp) is tuple or typing.get_origin(inner) is tuple:
        shape = tp if typing.get_origin(tp) is tuple else inner
        return [bad] * len(typing.get_args(shape))
    return bad


FLOAT_FIELDS = _typed_configs()


@pytest.mark.parametrize(("where", "cls", "tp"), FLOAT_FIELDS, ids=[f[0] for f in FLOAT_FIELDS])
def test_no_float_setting_of_any_typed_config_takes_nan_or_inf(where, cls, tp):
    name = where.rsplit(".", 1)[1]
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ConfigError, match=rf"x\.{name}(\[0\])?: expected a finite number"):
            build_dataclass(cls, {name: _filled(tp, bad)}, "x")


def test_ell_stops_where_base_two_already_needs_every_digit():
    # For C classes, ceil(log2 C) binary digits write every token; one more digit is 0
    # for every token (the codec's leading digit never varies).
    for classes, most in ((512, 9), (256, 8), (50257, 16), (257, 9), (2, 1)):
        assert len(format(classes - 1, "b")) == most
        assert SubTokenizer(classes, most).base == 2 or most == 1
        assert bool(SubTokenizer(classes, most).digits[:, 0].any())
        assert not bool(SubTokenizer(classes, most + 1).digits[:, 0].any())
    (text,) = _resolve("table1-cpu", "prime-l2", "task.tokenizer=gpt2", "model.ell=16")
    assert text.model.params.ell == 16
    with pytest.raises(ConfigError, match=r"model\.ell: must be in \[1, 16\] .*C = 50257"):
        _resolve("table1-cpu", "prime-l2", "task.tokenizer=gpt2", "model.ell=17")


def test_every_stream_of_the_largest_seed_is_one_torch_and_numpy_accept():
    for name in EVAL_STREAMS:
        torch.Generator().manual_seed(eval_seed(name, SEED_MAX))
        np.random.default_rng(eval_seed(name, SEED_MAX))
    torch.Generator().manual_seed(idle_seed(SEED_MAX, 2048))
    assert idle_seed(7, 2048) == 7 * 100_003 + 2048  # small seeds keep their streams
    with pytest.raises((RuntimeError, ValueError)):  # what the seed range keeps out
        torch.Generator().manual_seed(2**64)


@pytest.mark.parametrize(("experiment", "variant", "override", "needle"), CASES[:6])
def test_the_command_line_stops_before_any_store_or_run_directory_exists(
    tmp_path, capsys, experiment, variant, override, needle
):
    from benchmarks.cli.main import main

    store, runs = tmp_path / "mlflow.db", tmp_path / "runs"
    argv = ["run", experiment, "--variant", variant, "--set", override]
    code = main([*argv, "--tracking-uri", f"sqlite:///{store}", "--runs-dir", str(runs)])
    assert code != 0
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not store.exists() and not runs.exists()


@pytest.mark.parametrize(
    ("experiment", "variant", "override", "needle"),
    [
        (
            "table1-cpu",
            "bd3lm-l4",
            "train.init_from=table1-cpu/no-such-variant@425",
            "train.init_from: table1-cpu/no-such-variant@425",
        ),
        (
            "table1-cpu",
            "bd3lm-l4",
            "train.init_from=no-such-experiment/mdlm",
            "train.init_from: no-such-experiment/mdlm",
        ),
        ("nfe-sweep", "cifar10-l1-nfe128", "upstream.experiment=table1-cpu", "upstream"),
    ],
)
def test_a_run_another_one_reads_is_checked_before_any_job(experiment, variant, override, needle):
    """``upstream:`` and ``train.init_from`` resolve and fit at validation, not in the job."""
    configs = _resolve(experiment, variant, override)
    with pytest.raises(ConfigError) as err:
        validate(configs, "local")
    assert needle in str(err.value)
