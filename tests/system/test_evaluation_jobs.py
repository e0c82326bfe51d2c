"""Evaluation in real jobs: two gloo ranks share it, a warning signal during it requeues
the job, and the final numbers are those of one uninterrupted process.

Training on two ranks equals one process's only to float tolerance, so each job here
evaluates the model one process trained: it resumes that run's final checkpoint (in a
new tracking store, with the evaluation's shards removed) and has nothing left to train.
"""

from __future__ import annotations

import shutil

import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.evaluation.signals import SIGNAL_AT_SHARD_ENV
from benchmarks.launch.launcher import launch
from benchmarks.launch.profiles import load_profile
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.runner import execute

pytestmark = pytest.mark.slow

TINY_TEXT = {
    "train": {
        "steps": 4,
        "global_batch_size": 4,
        "checkpoint_every": 2,
        "log_every": 2,
        "warmup_steps": 1,
        "loader_workers": 1,
    },
    "task": {
        "eval_blocks": 12,
        "eval_passes": 2,
        "eval_batch": 4,
        "judge": None,  # no judge run is trained here
        "sample_count": 6,
        "sample_batch": 2,
        "sample_steps": 8,
    },
}


def tiny_text(variant: str = "prime-l2"):
    (config,) = load_experiment("table1-cpu").resolve("cpu", TINY_TEXT, [variant])
    return config


def trained_once(tmp_path, config) -> dict:
    """Train and evaluate ``config`` in one process under tmp_path/runs; then forget the
    evaluation (its tracking store is another, its shards are removed)."""
    reference = execute(config, f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "runs")
    shutil.rmtree(tmp_path / "runs" / config.run_id / "evaluation")
    return reference


def results(uri: str, config) -> tuple[dict, dict]:
    tracker = Tracker(uri)
    (run,) = tracker.client.search_runs([tracker.experiment_id(config.experiment)])
    return run.data.metrics, run.data.tags


def test_two_gloo_ranks_evaluate_as_one_process(tmp_path, monkeypatch):
    config = tiny_text()
    monkeypatch.setenv("PRIMEBENCH_THREADS", "1")
    reference = trained_once(tmp_path, config)
    uri = f"sqlite:///{tmp_path / 'two.db'}"
    (result,) = launch(
        [config],
        "local",
        profile=load_profile("cpu-ddp"),
        tracking_uri=uri,
        runs_dir=tmp_path / "runs",
    )
    assert result["metrics"] == reference["metrics"]  # bit for bit
    assert "val_nll_valid_bound" in result["metrics"] and "sample_nfe" in result["metrics"]
    metrics, tags = results(uri, config)
    assert tags["runtime.world_size"] == "2"
    assert metrics["perf/samples_per_s"] > 0 and metrics["perf/tokens_per_s"] > 0
    # Each rank computed its own shards: three sampler calls, two of them rank 0's.
    shards = sorted(
        p.name for p in (tmp_path / "runs" / config.run_id / "evaluation" / "samples").glob("*.npz")
    )
    assert shards == ["000000.npz", "000001.npz", "000002.npz"]


def test_a_warning_during_evaluation_requeues_and_continues_the_shards(tmp_path, monkeypatch):
    config = tiny_text()
    monkeypatch.setenv("PRIMEBENCH_THREADS", "1")
    reference = trained_once(tmp_path, config)
    uri = f"sqlite:///{tmp_path / 'job.db'}"
    # Rank 1 computes likelihood shard 3 (of 6) and then warns itself: it tells rank 0.
    monkeypatch.setenv(SIGNAL_AT_SHARD_ENV, "likelihood/3")
    (result,) = launch(
        [config],
        "local",
        profile=load_profile("cpu-ddp"),
        tracking_uri=uri,
        runs_dir=tmp_path / "runs",
    )
    metrics, tags = results(uri, config)
    assert tags["primebench.requeues"] == "1" and tags["primebench.state"] == "done"
    assert result["metrics"] == reference["metrics"]
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "submitit").rglob("*_log.err"))
    assert "evaluation stopped on signal SIGUSR2" in logs
