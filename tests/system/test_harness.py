"""The harness end to end: run ids, resume, launchers, MLflow, reports, Slurm."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.launch.launcher import launch
from benchmarks.launch.plan import PlannedExperiment
from benchmarks.launch.reproduction import reproduce_locally
from benchmarks.reports.complete_runs import load_runs
from benchmarks.reports.render import render_report
from benchmarks.runtime.preemption import SIGNAL_AT_STEP_ENV, Preempted
from benchmarks.tracking.store import TrackingError
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.runner import execute
from tests.helpers import mlflow_runs, sqlite, tiny_idle, tiny_toy


def test_warning_signal_saves_and_the_resumed_run_gives_the_same_metrics_in_one_mlflow_run(
    tmp_path, monkeypatch
):
    (config,) = tiny_toy(["prime-l2-joint"])
    reference = execute(config, sqlite(tmp_path / "reference.db"), tmp_path / "reference")

    uri = sqlite(tmp_path / "mlflow.db")
    # A real SIGUSR2 at step 3, between the periodic checkpoints (every 4 steps).
    monkeypatch.setenv(SIGNAL_AT_STEP_ENV, "3")
    with pytest.raises(Preempted, match="at step 3"):
        execute(config, uri, tmp_path / "runs")
    (stopped,) = mlflow_runs(uri, config)
    assert stopped.info.status == "KILLED"
    assert stopped.data.tags["primebench.state"] == "requeued"
    assert stopped.data.tags["primebench.requeues"] == "1"
    last = tmp_path / "runs" / config.run_id / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 3 and state["primebench_sampler"]["start_step"] == 3

    monkeypatch.delenv(SIGNAL_AT_STEP_ENV)
    resumed = execute(config, uri, tmp_path / "runs")
    (run,) = mlflow_runs(uri, config)  # no duplicate run
    assert resumed["mlflow_run_id"] == stopped.info.run_id == run.info.run_id
    assert run.info.status == "FINISHED"
    assert torch.load(last, weights_only=False)["global_step"] == 6
    assert resumed["metrics"] == reference["metrics"]  # bit-for-bit the same evaluation
    steps = [m.step for m in Tracker(uri).client.get_metric_history(run.info.run_id, "train/loss")]
    assert sorted(steps) == sorted(set(steps)) and max(steps) == 5

    again = execute(config, uri, tmp_path / "runs")
    assert again["skipped"] and again["metrics"] == run.data.metrics


def test_sweep_debug_gives_one_mlflow_run_per_config_and_is_idempotent(tmp_path):
    uri = sqlite(tmp_path / "mlflow.db")
    configs = tiny_toy(["mdm", "prime-l2-independent"])
    first = launch(configs, "debug", tracking_uri=uri, runs_dir=tmp_path / "runs")
    assert [r["skipped"] for r in first] == [False, False]
    second = launch(configs, "debug", tracking_uri=uri, runs_dir=tmp_path / "runs")
    assert [r["skipped"] for r in second] == [True, True]
    for config in configs:
        (run,) = mlflow_runs(uri, config)
        assert run.data.tags["primebench.variant"] == config.variant
        assert run.data.params["train.steps"] == "6"
        assert "git.commit" in run.data.tags and "version.torch" in run.data.tags
        assert "estimator" in run.data.tags["card.nll_valid_bound"]


@pytest.mark.slow
def test_sweep_local_gives_one_mlflow_run_per_config(tmp_path):
    uri = sqlite(tmp_path / "mlflow.db")
    configs = tiny_toy(["mdm", "prime-l2-joint"])
    results = launch(configs, "local", tracking_uri=uri, runs_dir=tmp_path / "runs", parallel=2)
    assert {r["run_id"] for r in results} == {c.run_id for c in configs}
    for config in configs:
        assert len(mlflow_runs(uri, config)) == 1


@pytest.mark.slow
def test_a_local_reproduction_pools_its_experiments_and_times_each(tmp_path, capsys):
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    plan = [
        PlannedExperiment("idle-steps", tiny_idle()),
        PlannedExperiment("toy2d", tiny_toy(["mdm", "prime-l2-joint"])),
    ]
    done = reproduce_locally(plan, tracking_uri=uri, runs_dir=runs, parallel=2)
    rows = done.rows
    assert not done.missing
    assert [row[:3] for row in rows] == [("idle-steps", 2, 0), ("toy2d", 2, 0)]
    for _, _, _, wall, run_seconds in rows:
        assert 0 < wall <= run_seconds * 1.001 + 1  # two runs overlap or follow each other
    for config in plan[0].configs + plan[1].configs:
        assert len(mlflow_runs(uri, config)) == 1
    out = capsys.readouterr().out
    assert "idle-steps (2), toy2d (2): 4 run(s), 2 at a time" in out
    again = reproduce_locally(plan, tracking_uri=uri, runs_dir=runs, parallel=2).rows
    assert [row[:3] for row in again] == [("idle-steps", 2, 2), ("toy2d", 2, 2)]


def test_unreachable_tracking_server_is_an_error_before_anything_runs(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TrackingError, match="not reachable"):
        launch(
            tiny_toy(["mdm"]),
            "debug",
            tracking_uri=f"http://127.0.0.1:{port}",
            runs_dir=tmp_path / "runs",
        )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ckpt"))
    with pytest.raises(TrackingError, match="plain file store"):
        launch(tiny_toy(["mdm"]), "debug", tracking_uri="file:./mlruns", runs_dir=tmp_path)


def test_report_renders_from_a_populated_store_without_network(tmp_path, monkeypatch):
    uri = sqlite(tmp_path / "mlflow.db")
    launch(tiny_toy() + tiny_idle(), "debug", tracking_uri=uri, runs_dir=tmp_path / "runs")

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    written = render_report(uri, "cpu", results_dir=tmp_path / "results")
    names = {path.name for _, path in written}
    assert {
        "table1_isr.md",
        "figure1_idle_steps.png",
        "figure4_toy2d.md",
        "figure4_toy2d.png",
    } <= names
    out = tmp_path / "results" / "cpu"
    isr = (out / "table1_isr.md").read_text()
    assert "| 1 | MDLM | 36.77% | 36.77% |" in isr and "13.52%" in isr
    toy = (out / "figure4_toy2d.md").read_text()
    for column in ("published estimator", "valid bound", "entropy", "invalid samples"):
        assert column in toy
    assert "\\begin{tabular}" in (out / "figure4_toy2d.tex").read_text()
    assert (out / "figure4_toy2d.png").stat().st_size > 10_000
    assert "figure4_toy2d.md" in (out / "index.md").read_text()
    # The paired table against the per-sample values each run wrote.
    configs = {c.variant: c for c in tiny_toy()}
    stored = {
        v: np.load(tmp_path / "runs" / c.run_id / "artifacts" / "per_block_nll.npz")
        for v, c in configs.items()
    }
    assert np.array_equal(stored["mdm"]["index"], stored["prime-l2-joint"]["index"])
    d = stored["prime-l2-joint"]["valid_bound"] - stored["mdm"]["valid_bound"]
    paired = pd.read_csv(out / "figure4_toy2d_paired.csv").set_index("claim")
    row = paired.loc["Prime l=2 joint below MDM"]
    assert row["difference ± SE"] == f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f}"
    assert row["seeds"] == 1 and row["blocks"] == len(d)
    assert set(paired["verdict"]) <= {"confirmed", "refuted", "not resolved at this budget"}
    steps = pd.read_csv(out / "figure4_toy2d_steps.csv").set_index("variant")
    assert list(steps.columns) == ["T=1", "T=2"]
    assert set(configs) | {"exact draws (floor)", "joint - independent (TV)"} == set(steps.index)
    assert (out / "figure4_toy2d_steps.png").stat().st_size > 10_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_real_mlflow_server_round_trip(tmp_path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            sqlite(tmp_path / "server.db"),
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        (config,) = tiny_idle(["prime-l2"])
        result = execute(config, uri, tmp_path / "runs")
        runs, _ = load_runs(uri, "cpu")
        assert list(runs["tags.primebench.run_id"]) == [config.run_id]
        assert runs["run_id"][0] == result["mlflow_run_id"]
        written = render_report(uri, "cpu", results_dir=tmp_path / "results")
        assert any(p.name == "figure1_idle_steps.png" for _, p in written)
    finally:
        server.terminate()
        server.wait(timeout=30)
