"""Local jobs: the ledger, status, and CPU threads fixed by the submission, not the shell."""

from __future__ import annotations

import os
import pickle

import pytest

from benchmarks.launch.launcher import submit
from benchmarks.launch.ledger import read_ledger
from benchmarks.launch.profiles import ClusterProfile
from benchmarks.launch.status import collect_status
from benchmarks.launch.submission import LaunchError, interruption, summary, wait
from benchmarks.launch.train_job import TrainJob, job_threads
from benchmarks.tracking.tracker import Tracker
from tests.helpers import tiny_toy


def test_a_job_runs_with_the_threads_of_its_submission_not_of_the_shell(monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_THREADS", "7")  # exported by the submitting shell
    profile = ClusterProfile(cpus_per_task=3, ranks_per_node=2)
    assert job_threads("slurm", profile) == 3
    assert job_threads("local", profile, threads=5) == 5
    assert job_threads("local", profile) == max(1, (os.cpu_count() or 1) // 2)
    assert job_threads("debug", None) is None  # in this process: its own setting
    # Requeues resubmit the pickled callable: the thread count travels with it.
    assert pickle.loads(pickle.dumps(TrainJob(3))).threads == 3


@pytest.mark.slow
def test_local_submission_is_in_the_ledger_and_in_status(tmp_path, monkeypatch):
    (config,) = tiny_toy(["prime-l2-joint"])
    uri, runs = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "runs"
    monkeypatch.delenv("PRIMEBENCH_THREADS", raising=False)
    submission = submit([config], "local", tracking_uri=uri, runs_dir=runs)
    # Submitting leaves this process as it was: later submissions from it (a Slurm job
    # inherits the environment) must not get this one's thread count.
    assert "PRIMEBENCH_THREADS" not in os.environ
    (entry,) = read_ledger(runs)
    assert (entry.run_id, entry.job_id, entry.cluster) == (
        config.run_id,
        submission.job_ids[0],
        "local",
    )
    (row,) = collect_status([config], uri, runs, slurm=lambda ids: {})
    assert row.state in ("pending", "running") and row.job_id == entry.job_id
    wait(submission)
    (row,) = collect_status([config], uri, runs, slurm=lambda ids: {})
    assert (row.state, row.steps_text, row.job_id) == ("done", "6/6", entry.job_id)
    run = Tracker(uri).find_run(config)
    assert run.data.tags["runtime.threads"] == str(job_threads("local", None))


def test_a_jobs_error_is_one_line_and_a_stop_by_signal_is_told_from_a_failure():
    def job_error(last: str) -> LaunchError:  # as submitit reports a local job's exception
        trace = f'Traceback (most recent call last):\n  File "x.py", line 1, in f\n{last}'
        text = f"Job (task=0) failed during processing with trace:\n----\n{trace}\n\n----\n"
        return LaunchError(text + "You can check full logs (log: /runs/7_0_log.err)")

    stopped = job_error(
        "benchmarks.runtime.preemption.Interrupted: stopped on signal SIGINT at step 9"
    )
    assert interruption(stopped) == "stopped on signal SIGINT at step 9"
    assert interruption(job_error("KeyboardInterrupt")) == "KeyboardInterrupt"
    broken = job_error("ValueError: task.path: no such file")
    assert interruption(broken) is None and interruption(None) is None
    assert summary(broken) == "ValueError: task.path: no such file (log: /runs/7_0_log.err)"
    assert summary(RuntimeError("plain")) == "plain"
