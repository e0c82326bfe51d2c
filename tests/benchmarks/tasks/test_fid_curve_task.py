"""The FID curve task (image-fid-curve): one FID per checkpoint an upstream image run
kept, the points the authors chose each row's epoch by."""

import pandas as pd
import pytest
import yaml

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import parse_overrides
from benchmarks.core import ConfigError
from benchmarks.reports.render import render_report
from benchmarks.tasks import image_fid_curve, images
from benchmarks.training.runner import execute
from tests.benchmarks.tasks.test_image_task import _cifar_parquet, cifar_task_overrides
from tests.helpers import StandInFeatures


def _upstream_overrides(tmp_path):
    return [
        *cifar_task_overrides(tmp_path),
        "task.fid_real_floor=false",
        "task.fid_resamples=3",
        "train.steps=6",
        "train.global_batch_size=4",
        "train.checkpoint_every=2",
    ]


def _curve_file(tmp_path, name, task):
    body = {
        "description": "FID curve of a tiny image run",
        "defaults": {
            "seed": 0,
            "task": {"name": "image-fid-curve", **task},
            "model": None,
            "upstream": {
                "experiment": "image-cpu",
                "variant": "mdm",
                "overrides": _upstream_overrides(tmp_path),
            },
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_experiment(path).resolve("cpu")[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny CIFAR-10-schema run of 6 steps that kept its checkpoints of steps 2, 4, 6
    (trained once for the tests of this file)."""
    tmp_path = tmp_path_factory.mktemp("curve")
    with pytest.MonkeyPatch.context() as patch:
        _stand_ins(patch, tmp_path)
        uri = f"sqlite:///{tmp_path / 'm.db'}"
        runs = tmp_path / "runs"
        keep = parse_overrides([*_upstream_overrides(tmp_path), "train.keep_checkpoints=true"])
        (config,) = load_experiment("image-cpu").resolve("cpu", keep, ["mdm"])
        metrics = execute(config, uri, runs)["metrics"]
        yield tmp_path, uri, runs, metrics


def _stand_ins(patch, tmp_path):
    patch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    patch.setattr(images, "InceptionFeatures", StandInFeatures)
    patch.setattr(image_fid_curve, "InceptionFeatures", StandInFeatures)
    if not (tmp_path / "train.parquet").exists():
        _cifar_parquet(tmp_path / "train.parquet", 12, 0)
        _cifar_parquet(tmp_path / "test.parquet", 16, 1)


def _history(uri, run_id, name):
    from mlflow.tracking import MlflowClient

    return [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, name)]


def test_one_fid_per_kept_checkpoint_and_the_last_is_the_runs_own(trained, monkeypatch):
    tmp_path, uri, runs, upstream_metrics = trained
    _stand_ins(monkeypatch, tmp_path)
    config = _curve_file(
        tmp_path, "curve", {"sample_count": 6, "sample_batch": 6, "fid_resamples": 3}
    )
    out = execute(config, uri, runs)
    metrics = out["metrics"]
    history = sorted(_history(uri, out["mlflow_run_id"], "fid_curve"))
    assert [step for step, _ in history] == [2, 4, 6]
    # The last checkpoint at the row's own sampler and sample count is the row's own
    # evaluation: the same EMA weights, seeded stream and reference statistics.
    assert history[-1][1] == pytest.approx(upstream_metrics["fid"], rel=1e-9)
    assert history[0][1] != history[-1][1]  # other weights, other samples
    values = dict(history)
    assert metrics["fid_curve_best"] == min(values.values())
    assert values[int(metrics["fid_curve_best_step"])] == metrics["fid_curve_best"]
    assert metrics["fid_curve_last"] == values[6] and metrics["fid_curve_points"] == 3
    assert len(_history(uri, out["mlflow_run_id"], "fid_curve_se")) == 3

    # The report draws the curve and sets it beside the row's own FID.
    render_report(uri, "cpu", tmp_path / "results")
    table = pd.read_csv(tmp_path / "results" / "cpu" / "fid_curves.csv")
    (row,) = table.to_dict("records")
    assert row["points"] == 3 and row["trained to (step)"] == 6
    assert row["FID(50k) of the row"] == pytest.approx(upstream_metrics["fid"], abs=0.006)
    assert row["FID(2k) there"].startswith(f"{values[6]:.2f} ± ")
    best_step = int(metrics["fid_curve_best_step"])
    assert row["best FID(2k) (step)"] == f"{values[best_step]:.2f} ({best_step})"
    notes = (tmp_path / "results" / "cpu" / "fid_curves.md").read_text()
    assert "optimistic" in notes
    assert (tmp_path / "results" / "cpu" / "fid_curves.png").stat().st_size > 0


def test_every_kth_checkpoint_keeps_the_last_and_a_sampler_setting_changes_the_points(
    trained, monkeypatch
):
    tmp_path, uri, runs, _ = trained
    _stand_ins(monkeypatch, tmp_path)
    config = _curve_file(
        tmp_path,
        "sparse",
        {
            "sample_count": 6,
            "sample_batch": 3,
            "every": 2,
            "sample_steps": 2,
            "temperature": [0.0, 1.0, 0.8],
        },
    )
    out = execute(config, uri, runs)
    assert [s for s, _ in sorted(_history(uri, out["mlflow_run_id"], "fid_curve"))] == [2, 6]
    assert out["metrics"]["fid_curve_points"] == 2


def test_an_upstream_without_kept_checkpoints_names_the_setting(tmp_path, monkeypatch):
    _stand_ins(monkeypatch, tmp_path)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    runs = tmp_path / "runs"
    (upstream,) = load_experiment("image-cpu").resolve(
        "cpu", parse_overrides(_upstream_overrides(tmp_path)), ["mdm"]
    )
    execute(upstream, uri, runs)
    config = _curve_file(tmp_path, "curve", {"sample_count": 6})
    with pytest.raises(
        ConfigError,
        match="kept no periodic checkpoint at step\\(s\\) 2, 4: .*keep_checkpoints=true",
    ):
        execute(config, uri, runs)


@pytest.mark.parametrize(
    ("task", "needle"),
    [
        ({"sample_count": 1}, "task.sample_count: must be >= 2"),
        ({"every": 0}, "task.every: must be >= 1"),
        ({"proposal": "pixel"}, "proposal"),
    ],
)
def test_bad_settings_are_named(tmp_path, task, needle):
    with pytest.raises(ConfigError, match=needle):
        _curve_file(tmp_path, "bad", task)


def test_the_training_loader_reference_is_scored_and_cached_apart(trained, monkeypatch):
    tmp_path, uri, runs, upstream_metrics = trained
    _stand_ins(monkeypatch, tmp_path)
    config = _curve_file(
        tmp_path, "loader", {"sample_count": 6, "sample_batch": 6, "reference": "training_loader"}
    )
    assert "reference" not in _curve_file(tmp_path, "plain", {}).task.to_dict()  # a later field
    out = execute(config, uri, runs)
    last = sorted(_history(uri, out["mlflow_run_id"], "fid_curve"))[-1]
    # 16 reference images in whole batches of 4: all of them, permuted, some flipped
    assert last[0] == 6 and last[1] != pytest.approx(upstream_metrics["fid"], rel=1e-9)
    cached = sorted(p.name for p in (tmp_path / "cache" / "fid-reference").glob("*.npy"))
    loader = [n for n in cached if n.startswith("cifar10-train-training-loader-")]
    plain = [n for n in cached if n.startswith("cifar10-train-test-stand-in")]
    assert len(loader) == 1 and len(plain) == 1
