"""On the real one-node Slurm of slurm/cluster-up.sh: sweeps, time-outs that requeue, DDP.

The jobs here run for several allocations of a two-minute limit: Slurm warns each one
(SIGUSR2, ``signal_delay_s`` before the limit), the run saves and the job requeues
itself, and the last allocation finishes. The final metrics must equal, bit for bit,
those of an uninterrupted run of the same config, in exactly one MLflow run whose
metric steps are each logged once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.launch.launcher import launch, submit
from benchmarks.launch.profiles import ClusterProfile, load_profile
from benchmarks.launch.submission import wait
from benchmarks.tracking.tracker import RUN_ID_TAG, Tracker
from benchmarks.training.runner import execute
from tests.helpers import TINY_TOY, tiny_toy
from tests.paths import REPO
from tests.system.test_evaluation_jobs import TINY_TEXT, trained_once

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("apt-get") is None,
        reason="starting a Slurm cluster needs root and apt-get",
    ),
]


def long_toy(steps: int) -> dict:
    """A toy run of a few minutes on one core: longer than two allocations of 2 minutes."""
    return {
        "train": {
            "steps": steps,
            "global_batch_size": 2048,
            "checkpoint_every": 1000,
            "log_every": 25,
            "loader_workers": 1,
            # The recipe this test was sized with, whatever toy2d's cpu scale trains with.
            "lr": 0.001,
            "lr_decay": "constant",
            "min_lr": 0.0,
        },
        "model": {
            "masking": "independent",
            "backbone": {"emb_dim": 32, "hidden": 256, "depth": 2, "dropout": 0.1},
        },
        "task": {**TINY_TOY["task"], "eval_samples": 256, "eval_batch": 256},
    }


@pytest.fixture(scope="module")
def cluster():
    subprocess.run(["bash", str(REPO / "slurm" / "cluster-up.sh")], check=True, timeout=1200)
    yield
    subprocess.run(["bash", str(REPO / "slurm" / "cluster-down.sh")], check=False, timeout=300)


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def the_run(uri: str, config):
    tracker = Tracker(uri)
    exp = tracker.experiment_id(config.experiment)
    runs = tracker.client.search_runs([exp], f"tags.`{RUN_ID_TAG}` = '{config.run_id}'")
    assert len(runs) == 1, f"{len(runs)} MLflow runs for one config"
    return runs[0], tracker


class _ReleaseRequeued(threading.Thread):
    """Slurm holds a requeued job for two minutes (BeginTime); an administrator's
    `scontrol update StartTime=now` lets the test go on without changing the job."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(2.0):
            out = subprocess.run(
                ["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True, text=True
            ).stdout
            for line in out.splitlines():
                job, _, reason = line.partition(" ")
                if reason.strip() == "BeginTime":
                    subprocess.run(
                        ["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True
                    )


def test_slurm_sweep_on_a_one_node_cluster(cluster, tmp_path):
    uri = sqlite(tmp_path / "mlflow.db")
    configs = tiny_toy(["mdm", "prime-l2-joint"])
    results = launch(
        configs,
        "slurm",
        profile=load_profile("local-test"),
        tracking_uri=uri,
        runs_dir=tmp_path / "runs",
    )
    assert sorted(r["run_id"] for r in results) == sorted(c.run_id for c in configs)
    for config in configs:
        run, _ = the_run(uri, config)
        assert run.info.status == "FINISHED"


@pytest.mark.parametrize("ranks, steps", [(1, 4500), (2, 6000)])
def test_a_job_that_times_out_requeues_and_ends_as_if_uninterrupted(
    cluster, tmp_path, monkeypatch, ranks, steps
):
    (config,) = load_experiment("toy2d").resolve("cpu", long_toy(steps), ["prime-l2-joint"])
    profile = ClusterProfile(
        partition="debug",
        ranks_per_node=ranks,
        cpus_per_task=1,
        mem_gb=4,
        timeout_min=2,
        signal_delay_s=60,
        max_requeues=20,  # a slow machine trains fewer steps per two-minute allocation
        array_parallelism=1,
    )
    uri = sqlite(tmp_path / "mlflow.db")
    submission = submit(
        [config], "slurm", profile=profile, tracking_uri=uri, runs_dir=tmp_path / "runs"
    )

    # The uninterrupted reference, meanwhile, with the same rank layout and threads.
    ref_uri = sqlite(tmp_path / "reference.db")
    monkeypatch.setenv("PRIMEBENCH_THREADS", "1")
    if ranks == 1:
        reference = execute(config, ref_uri, tmp_path / "reference")
    else:
        (reference,) = launch(
            [config],
            "local",
            profile=load_profile("cpu-ddp"),
            tracking_uri=ref_uri,
            runs_dir=tmp_path / "reference",
        )
    releaser = _ReleaseRequeued()
    releaser.start()
    began = time.time()
    try:
        (result,) = wait(submission)
    finally:
        releaser.stop.set()
    print(f"{ranks} rank(s): {time.time() - began:.0f} s after the reference finished")

    run, tracker = the_run(uri, config)
    assert run.info.status == "FINISHED" and run.data.tags["primebench.state"] == "done"
    assert int(run.data.tags["primebench.requeues"]) >= 2  # timed out at least twice
    assert run.data.tags["runtime.world_size"] == str(ranks)
    assert run.data.tags["runtime.threads"] == str(profile.cpus_per_task)
    steps_logged = [
        m.step for m in tracker.client.get_metric_history(run.info.run_id, "train/loss")
    ]
    every = config.train.log_every
    assert sorted(steps_logged) == list(range(every - 1, steps, every))  # once each
    assert result["metrics"] == reference["metrics"]  # bit for bit
    final = {
        k: v
        for k, v in run.data.metrics.items()
        if not k.startswith(("train/", "perf/")) and k != "epoch"
    }
    assert final == reference["metrics"]
    # Accounting records the end of the job a moment after its result file appears.
    deadline = time.time() + 120
    while True:
        states = subprocess.run(
            ["sacct", "-n", "-X", "-D", "-j", submission.array_id, "-o", "State"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if (states and states[-1] == "COMPLETED") or time.time() > deadline:
            break
        time.sleep(2)
    assert states.count("REQUEUED") >= 2 and states[-1] == "COMPLETED", states


def test_an_evaluation_cut_by_the_time_limit_continues_in_the_next_allocation(
    cluster, tmp_path, monkeypatch
):
    """Two ranks evaluate a trained text model for longer than one two-minute allocation:
    Slurm's warning stops them at a shard boundary, the job requeues, the next
    allocation computes the missing shards, and the numbers are one process's."""
    # 60 sampler calls of 256 steps: more than one allocation on two single-core ranks.
    task = {**TINY_TEXT["task"], "eval_blocks": 16, "sample_count": 120, "sample_steps": 256}
    overrides = {**TINY_TEXT, "task": task}
    (config,) = load_experiment("table1-cpu").resolve("cpu", overrides, ["prime-l2"])
    monkeypatch.setenv("PRIMEBENCH_THREADS", "1")
    runs = tmp_path / "runs"
    reference = trained_once(tmp_path, config)  # the job evaluates its checkpoint afresh
    profile = ClusterProfile(
        partition="debug",
        ranks_per_node=2,
        cpus_per_task=1,
        mem_gb=4,
        timeout_min=2,
        signal_delay_s=60,
        max_requeues=20,
        array_parallelism=1,
    )
    uri = sqlite(tmp_path / "mlflow.db")
    submission = submit([config], "slurm", profile=profile, tracking_uri=uri, runs_dir=runs)
    releaser = _ReleaseRequeued()
    releaser.start()
    try:
        (result,) = wait(submission)
    finally:
        releaser.stop.set()
    run, _ = the_run(uri, config)
    assert run.info.status == "FINISHED" and run.data.tags["primebench.state"] == "done"
    assert int(run.data.tags["primebench.requeues"]) >= 1  # cut inside the evaluation
    assert run.data.tags["runtime.world_size"] == "2"
    assert result["metrics"] == reference["metrics"]  # bit for bit
    logs = "".join(p.read_text() for p in (runs / "submitit").rglob("*_log.err"))
    assert "evaluation stopped on signal SIGUSR2" in logs
    assert "Trainer.fit` stopped: `max_steps=4` reached" in logs  # nothing left to train
