"""FID against training steps and sampler settings (benchmarks.perf.image_fid_curve) on
a tiny CIFAR-10-schema run that keeps its periodic checkpoints."""

import numpy as np
import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import parse_overrides
from benchmarks.core import ConfigError
from benchmarks.perf import image_fid_curve
from benchmarks.perf.image_fid_curve import curve_checkpoints, fid_curve, sampler_settings
from benchmarks.tasks import images
from benchmarks.training.runner import execute
from tests.benchmarks.tasks.test_image_task import _cifar_parquet, cifar_task_overrides
from tests.helpers import StandInFeatures


def _overrides(tmp_path, *extra):
    return [
        *cifar_task_overrides(tmp_path),
        "task.fid_real_floor=false",
        "task.fid_resamples=3",
        "train.steps=4",
        "train.global_batch_size=4",
        "train.checkpoint_every=2",
        *extra,
    ]


def test_kept_checkpoints_give_fid_per_training_step_and_sampler(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(images, "InceptionFeatures", StandInFeatures)
    monkeypatch.setattr(image_fid_curve, "InceptionFeatures", StandInFeatures)
    _cifar_parquet(tmp_path / "train.parquet", 12, 0)
    _cifar_parquet(tmp_path / "test.parquet", 16, 1)
    experiment = load_experiment("image-cpu")
    plain = parse_overrides(_overrides(tmp_path))
    keep = parse_overrides(_overrides(tmp_path, "train.keep_checkpoints=true"))
    (config,) = experiment.resolve("cpu", keep, ["mdm"])
    # Storage only: keeping the checkpoints leaves the run id as it was.
    assert config.run_id == experiment.resolve("cpu", plain, ["mdm"])[0].run_id
    runs = tmp_path / "runs"
    metrics = execute(config, f"sqlite:///{tmp_path / 'm.db'}", runs)["metrics"]
    assert [step for step, _ in curve_checkpoints(runs, config.run_id)] == [2, 4]

    settings = ["{}", '{"temperature": [0, 1, 0.8], "steps": 2}']
    rows = fid_curve(config, runs, settings, None)
    assert [(r["train_step"], r["steps"]) for r in rows] == [(2, 4), (2, 2), (4, 4), (4, 2)]
    assert all(np.isfinite(r["fid"]) and r["fid_se"] >= 0 for r in rows)
    floor = rows[0]["floor"]  # 6 held-out images past the 10 of the reference
    assert np.isfinite(floor) and rows[1]["fid_over_floor"] == rows[1]["fid"] / floor
    # The last kept checkpoint with the experiment's own sampler is the run's own
    # evaluation: the same EMA weights, the same seeded sampling stream, the same reference.
    assert rows[2]["fid"] == pytest.approx(metrics["fid"], rel=1e-9)
    assert rows[2]["kid"] == pytest.approx(metrics["kid"], rel=1e-9)
    assert rows[0]["fid"] != rows[2]["fid"]  # other weights, other samples
    only = fid_curve(config, runs, ["{}"], {4})
    assert [r["train_step"] for r in only] == [4] and only[0]["fid"] == rows[2]["fid"]
    with pytest.raises(ConfigError, match="--at: the run kept no checkpoint at steps \\[3\\]"):
        fid_curve(config, runs, ["{}"], {3})


def test_a_run_that_kept_no_periodic_checkpoint_is_read_from_last(tmp_path):
    ckpt = tmp_path / "abc" / "checkpoints"
    with pytest.raises(FileNotFoundError, match="no checkpoint of run abc"):
        curve_checkpoints(tmp_path, "abc")
    ckpt.mkdir(parents=True)
    (ckpt / "last.ckpt").write_bytes(b"x")
    (ckpt / "step-notes.ckpt").write_bytes(b"x")  # not a step file
    assert curve_checkpoints(tmp_path, "abc") == [(None, ckpt / "last.ckpt")]
    (ckpt / "step00000010.ckpt").write_bytes(b"x")
    (ckpt / "step00000002-v1.ckpt").write_bytes(b"x")  # Lightning's name for a second save
    assert [s for s, _ in curve_checkpoints(tmp_path, "abc")] == [2, 10]


def test_sampler_settings_are_validated_and_name_the_argument():
    from benchmarks.tasks.image_params import ImageParams

    base = ImageParams(dataset="cifar10", sample_steps=32)
    ((label, params, steps),) = sampler_settings(['{"corrector": [16, 2, 0.75]}'], base)
    assert steps == 32 and params.corrector == (16.0, 2.0, 0.75) and params.dataset == "cifar10"
    assert sampler_settings([], base)[0][1] == base
    with pytest.raises(ConfigError, match="--sampler '\\{temperature': not JSON"):
        sampler_settings(["{temperature"], base)
    with pytest.raises(ConfigError, match="expected a JSON mapping"):
        sampler_settings(["[1, 2]"], base)
    assert sampler_settings(['{"steps": 8}'], base)[0][2] == 8
    with pytest.raises(ConfigError, match="sample_steps"):
        sampler_settings(['{"steps": "many"}'], base)
    with pytest.raises(ConfigError, match="temprature"):
        sampler_settings(['{"temprature": [0, 1, 0.8]}'], base)
    with pytest.raises(ConfigError, match="tau = a s\\^b \\+ c must stay > 0"):
        sampler_settings(['{"temperature": [0, 1, 0]}'], base)
