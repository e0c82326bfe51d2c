"""One run id, one worker: the run-directory lease, concurrent starts, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

from benchmarks.config.experiments import load_experiment
from benchmarks.launch.launcher import submit
from benchmarks.launch.profiles import load_profile
from benchmarks.launch.submission import LaunchError, wait
from benchmarks.runtime.lease import RunBusy, RunLease
from benchmarks.runtime.preemption import SIGNAL_AT_STEP_ENV, Interrupted
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.runner import execute
from tests.helpers import TINY_TOY, mlflow_runs, sqlite, tiny_toy
from tests.paths import REPO

# ------------------------------------------------------------------ the lease


def test_a_held_lease_refuses_a_second_holder_and_names_the_first(tmp_path):
    first, second = RunLease(tmp_path / "run", "job-1"), RunLease(tmp_path / "run")
    assert first.try_acquire()
    assert not second.try_acquire()
    record = second.holder()
    assert (record["host"], record["pid"], record["job_id"]) == (
        socket.gethostname(),
        os.getpid(),
        "job-1",
    )
    with pytest.raises(RunBusy, match=rf"{socket.gethostname()}:{os.getpid()} \(job job-1\)"):
        second.acquire(if_busy="exit")
    first.release()
    assert second.try_acquire() and second.holder()["job_id"] is None
    second.release()


def test_a_waiting_starter_gets_the_lease_when_the_holder_lets_go(tmp_path):
    holder = RunLease(tmp_path / "run")
    assert holder.try_acquire()
    threading.Timer(0.5, holder.release).start()
    began = time.monotonic()
    waiter = RunLease(tmp_path / "run")
    waiter.acquire(if_busy="wait", poll_s=0.05)
    assert waiter.held and time.monotonic() - began >= 0.4
    waiter.release()


def test_the_lease_of_a_killed_holder_is_free_at_once(tmp_path):
    """A crash leaves the record but no lock: the kernel drops a dead process's flock."""
    code = (
        "import sys, time; from benchmarks.runtime.lease import RunLease; "
        f"lease = RunLease({str(tmp_path / 'run')!r}); lease.try_acquire(); "
        "print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"held"
    lease = RunLease(tmp_path / "run")
    assert not lease.try_acquire()
    child.kill()
    child.wait()
    assert lease.holder()["pid"] == child.pid  # the stale record is still there
    assert lease.try_acquire()
    assert json.loads(lease.path.read_text())["pid"] == os.getpid()
    lease.release()


def test_a_second_start_of_a_running_run_can_exit_naming_the_holder(tmp_path):
    (config,) = tiny_toy(["mdm"])
    holder = RunLease(tmp_path / "runs" / config.run_id, "job-7")
    assert holder.try_acquire()
    uri = sqlite(tmp_path / "mlflow.db")
    with pytest.raises(RunBusy, match=r"being run by .*\(job job-7\)"):
        execute(config, uri, tmp_path / "runs", if_busy="exit")
    assert mlflow_runs(uri, config) == []  # nothing started, nothing written
    holder.release()


# ------------------------------------------------------------------ concurrent starts

_STARTER = """
import json, sys, time
from pathlib import Path
from benchmarks.config.experiments import load_experiment
from benchmarks.training.runner import execute
overrides, uri, runs, go = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
(config,) = load_experiment("toy2d").resolve("cpu", overrides, ["prime-l2-joint"])
while not go.exists():  # every starter imported and ready: start together
    time.sleep(0.01)
result = execute(config, uri, runs)
print(json.dumps({"skipped": result["skipped"], "metrics": result["metrics"]}))
"""


@pytest.mark.slow
def test_concurrent_starts_of_one_run_id_make_one_mlflow_run_and_log_each_point_once(tmp_path):
    starters = 12
    uri, runs, go = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs", tmp_path / "go"
    Tracker(uri).experiment_id("toy2d")  # as submit does: the store exists before the jobs
    env = {**os.environ, "PRIMEBENCH_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, json.dumps(TINY_TOY), uri, str(runs), str(go)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(starters)
    ]
    time.sleep(1.0)
    go.touch()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    (config,) = tiny_toy(["prime-l2-joint"])
    (run,) = mlflow_runs(uri, config)
    assert run.info.status == "FINISHED"
    assert sorted(r["skipped"] for r in results) == [False] + [True] * (starters - 1)
    (trained,) = [r["metrics"] for r in results if not r["skipped"]]
    for other in results:  # a skipped start returns the stored run's metrics
        assert {k: other["metrics"][k] for k in trained} == trained
    history = Tracker(uri).client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(6))  # each step once
    for name, value in run.data.metrics.items():
        points = Tracker(uri).client.get_metric_history(run.info.run_id, name)
        assert len(points) == len({m.step for m in points}), name
        assert value == points[-1].value


_OPENER = """
import sys, time
from pathlib import Path
from benchmarks.tracking.tracker import Tracker
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()  # imported, ready
while not go.exists():
    time.sleep(0.01)
Tracker(sys.argv[1]).experiment_id("toy2d")
"""


@pytest.mark.slow
def test_processes_that_open_one_new_store_at_once_all_succeed(tmp_path):
    """Opening a new sqlite store runs MLflow's schema migrations; unguarded, all but one
    of the processes that do it together fail ("duplicate column name")."""
    uri, go = sqlite(tmp_path / "mlflow.db"), tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, uri, str(go), str(tmp_path / f"ready{i}")],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    while len(list(tmp_path.glob("ready*"))) < len(procs):
        time.sleep(0.05)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.strip().splitlines()[-1]
    assert len(Tracker(uri).client.search_experiments()) == 2  # Default and toy2d


# ------------------------------------------------------------------ Ctrl-C and SIGTERM


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_saves_marks_the_run_interrupted_and_the_next_start_resumes(
    tmp_path, monkeypatch, name
):
    (config,) = tiny_toy(["prime-l2-joint"])
    reference = execute(config, sqlite(tmp_path / "reference.db"), tmp_path / "reference")
    uri = sqlite(tmp_path / "mlflow.db")
    monkeypatch.setenv(SIGNAL_AT_STEP_ENV, f"3:{name}")  # a real signal, between checkpoints
    with pytest.raises(Interrupted, match=f"signal {name} at step 3"):
        execute(config, uri, tmp_path / "runs")
    (stopped,) = mlflow_runs(uri, config)
    assert stopped.info.status == "KILLED"  # never FINISHED
    tags = stopped.data.tags
    assert tags["primebench.state"] == "interrupted" and tags["primebench.step"] == "3"
    assert "primebench.complete" not in tags and tags["primebench.requeues"] == "0"
    last = tmp_path / "runs" / config.run_id / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # one save, one file
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored

    monkeypatch.delenv(SIGNAL_AT_STEP_ENV)
    resumed = execute(config, uri, tmp_path / "runs")
    (run,) = mlflow_runs(uri, config)
    assert resumed["mlflow_run_id"] == run.info.run_id and run.info.status == "FINISHED"
    assert resumed["metrics"] == reference["metrics"]
    history = Tracker(uri).client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(6))


@pytest.mark.slow
def test_ctrl_c_of_primebench_run_leaves_a_resumable_run(tmp_path):
    """A real SIGINT from outside, as a terminal sends it, to the CLI's process."""
    uri = sqlite(tmp_path / "mlflow.db")
    sets = ["--set", "train.steps=400", "--set", "train.log_every=1"]
    sets += ["--set", "train.checkpoint_every=1000", "--set", "model.backbone.hidden=16"]
    argv = ["-m", "benchmarks.cli.main", "run", "toy2d", "--variant", "mdm", *sets]
    argv += ["--tracking-uri", uri, "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, stderr=subprocess.PIPE, text=True)
    settings = {
        "train": {"steps": 400, "log_every": 1, "checkpoint_every": 1000},
        "model": {"backbone": {"hidden": 16}},
    }
    (config,) = load_experiment("toy2d").resolve("cpu", settings, ["mdm"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until training has logged a few steps
        runs = mlflow_runs(uri, config) if (tmp_path / "mlflow.db").exists() else []
        if runs and Tracker(uri).client.get_metric_history(runs[0].info.run_id, "train/loss"):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "run it again to resume" in err
    (run,) = mlflow_runs(uri, config)
    assert run.info.status == "KILLED" and run.data.tags["primebench.state"] == "interrupted"
    step = int(run.data.tags["primebench.step"])
    last = tmp_path / "runs" / config.run_id / "checkpoints" / "last.ckpt"
    assert 0 < step < 400 and torch.load(last, weights_only=False)["global_step"] == step


@pytest.mark.slow
def test_two_data_parallel_jobs_of_one_run_id_train_it_once(tmp_path):
    """Two 2-rank gloo jobs of one config submitted together: one trains, the other's
    ranks follow its main rank, which waits for the lease and then skips."""
    (config,) = tiny_toy(["prime-l2-joint"])
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    profile = load_profile("cpu-ddp")
    first = submit([config], "local", profile=profile, tracking_uri=uri, runs_dir=runs)
    second = submit([config], "local", profile=profile, tracking_uri=uri, runs_dir=runs)
    (a,), (b,) = wait(first), wait(second)
    assert sorted([a["skipped"], b["skipped"]]) == [False, True]
    (run,) = mlflow_runs(uri, config)
    assert run.info.status == "FINISHED" and run.data.tags["runtime.world_size"] == "2"
    history = Tracker(uri).client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(6))


@pytest.mark.slow
def test_a_data_parallel_job_told_to_exit_when_busy_fails_on_every_rank_naming_the_holder(
    tmp_path,
):
    (config,) = tiny_toy(["prime-l2-joint"])
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    holder = RunLease(runs / config.run_id, "job-9")
    assert holder.try_acquire()
    job = submit(
        [config],
        "local",
        profile=load_profile("cpu-ddp"),
        tracking_uri=uri,
        runs_dir=runs,
        if_busy="exit",
    )
    with pytest.raises(LaunchError, match=r"being run by .*\(job job-9\)"):
        wait(job)
    (only,) = job.jobs
    for rank in range(2):  # the other rank stopped too, with the same message
        assert (
            "(job job-9)"
            in only.paths.stderr.with_name(
                only.paths.stderr.name.replace("_0_log", f"_{rank}_log")
            ).read_text()
        )
    assert mlflow_runs(uri, config) == []
    holder.release()
