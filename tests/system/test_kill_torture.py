"""SIGKILL at random instants, as a scheduler does after its grace period: the run that
is started again after each kill ends bit-identical to an uninterrupted one, with one
MLflow run, each metric point once, and no file left behind by a killed writer."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.config.overrides import deep_merge
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.checkpoint_writer import TEMP_SUFFIX
from tests.helpers import TINY_TOY, as_overrides, mlflow_runs, sqlite, tiny_toy
from tests.paths import REPO

VARIANT = "prime-l2-joint"
# A checkpoint and a metric point at every step: a kill lands next to one of each.
STEPS = 40
SETTINGS = {
    "train": {"steps": STEPS, "checkpoint_every": 1, "log_every": 1, "keep_checkpoints": True}
}
KILLS = 20


def _command(root: Path) -> list[str]:
    sets = [f"--set={o}" for o in as_overrides(deep_merge(TINY_TOY, SETTINGS))]
    return [
        sys.executable,
        "-m",
        "benchmarks.cli.main",
        "run",
        "toy2d",
        "--variant",
        VARIANT,
        f"--tracking-uri={sqlite(root / 'mlflow.db')}",
        f"--runs-dir={root / 'runs'}",
        *sets,
    ]


def _start(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        _command(root),
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _last() -> str:
    return f"step{STEPS:08d}.ckpt"


def _newest_checkpoint(root: Path) -> float:
    return max((p.stat().st_mtime for p in root.glob("runs/*/checkpoints/*.ckpt")), default=0.0)


def _kill_after(
    job: subprocess.Popen, delay: float | None, root: Path | None = None, extra: float = 0.0
) -> int | None:
    """SIGKILL ``job`` after ``delay`` seconds, or (delay None) ``extra`` seconds after it
    wrote its first checkpoint; its exit code if it ended first, else None."""
    if delay is None:
        assert root is not None
        before = _newest_checkpoint(root)
        while job.poll() is None and _newest_checkpoint(root) <= before:
            time.sleep(0.01)
        delay = extra
    try:
        return job.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        return None


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_sigkill_at_random_instants_loses_nothing_and_doubles_nothing(tmp_path):
    reference, tortured = tmp_path / "reference", tmp_path / "tortured"
    reference.mkdir(), tortured.mkdir()
    began = time.monotonic()
    done = _start(reference)
    first = None  # the instant the first checkpoint is on disk: start-up is over
    trained = None  # the instant the last one is: evaluation begins
    while done.poll() is None:
        now = time.monotonic() - began
        if first is None and list((reference / "runs").glob("*/checkpoints/*.ckpt")):
            first = now
        if trained is None and list((reference / "runs").glob(f"*/checkpoints/{_last()}")):
            trained = now
        time.sleep(0.02)
    assert done.returncode == 0, done.stderr.read().decode()[-3000:]
    whole = time.monotonic() - began
    assert first is not None and trained is not None
    evaluation = whole - trained

    step_time = (whole - first) / STEPS  # an overestimate: evaluation is in it
    rng = random.Random(27)
    kills = late_kills = 0
    phases = {"start-up": 0, "training": 0, "evaluation": 0}
    while True:
        assert kills < 10 * STEPS, "the killed run never completed"
        done_training = bool(list((tortured / "runs").glob(f"*/checkpoints/{_last()}")))
        job = _start(tortured)
        code = None
        if done_training and late_kills < 3:  # in evaluation and the final MLflow writes
            late_kills += 1
            phase = "evaluation"
            code = _kill_after(job, rng.uniform(0.7 * first, 0.7 * first + evaluation))
        elif not done_training and rng.random() < 0.25:  # in start-up (a resumed one is
            phase = "start-up"  # shorter than a fresh one: kills stop well before `first`)
            code = _kill_after(job, rng.uniform(0.0, 0.5 * first))
        elif not done_training:  # in training, next to a checkpoint write or a metric point
            phase = "training"
            code = _kill_after(job, None, tortured, rng.uniform(0.0, 0.5) * step_time)
        else:
            code = job.wait(timeout=600)
        if code is None:
            kills += 1
            phases[phase] += 1
            continue
        assert code == 0, job.stderr.read().decode()[-3000:]
        break
    assert kills >= KILLS, f"the run completed after {kills} kills: lengthen it"
    print(
        f"{kills} kills (aimed at {phases}); uninterrupted run {whole:.1f} s, "
        f"of it start-up {first:.1f} s and evaluation {evaluation:.1f} s"
    )

    (config,) = tiny_toy([VARIANT], SETTINGS)
    (ref_run,) = mlflow_runs(sqlite(reference / "mlflow.db"), config)
    (run,) = mlflow_runs(sqlite(tortured / "mlflow.db"), config)  # one MLflow run
    assert run.info.status == "FINISHED" and run.data.tags["primebench.complete"] == "true"
    # Bit-identical final metrics; perf/* are wall-clock measurements of the machine.
    measured = {k: v for k, v in ref_run.data.metrics.items() if not k.startswith("perf/")}
    assert {k: run.data.metrics[k] for k in measured} == measured
    assert set(run.data.metrics) == set(ref_run.data.metrics)
    client = Tracker(sqlite(tortured / "mlflow.db")).client
    ref_client = Tracker(sqlite(reference / "mlflow.db")).client
    for name in measured:
        points = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
        ref = [(m.step, m.value) for m in ref_client.get_metric_history(ref_run.info.run_id, name)]
        assert sorted(points) == sorted(ref), name  # each point once, the same values
    assert set(run.data.params.items()) == set(ref_run.data.params.items())
    # No stray files in the run's directory (each start keeps its own job log, beside it).
    assert _files(tortured / "runs" / config.run_id) == _files(reference / "runs" / config.run_id)
    assert not list((tortured / "runs").rglob(f"*{TEMP_SUFFIX}"))
    assert not list(tortured.glob("mlflow.db-*")), "a journal was left beside the store"
