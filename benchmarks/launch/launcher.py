"""Launch run configs with submitit: ``debug`` (in-process), ``local`` (processes on this
machine), or ``slurm`` (a job array with a cluster profile from ``slurm/<profile>.yaml``).

Every job calls :class:`benchmarks.launch.train_job.TrainJob`, a ``submitit.helpers.Checkpointable``
around :func:`benchmarks.training.runner.execute`: on Slurm's warning signal (time limit or
preemption) the run saves a checkpoint and the job is requeued with the same arguments, at most
``profile.max_requeues`` times for time-outs; the requeued job resumes the checkpoint
inside the same MLflow run. ``execute`` is idempotent, so a sweep submitted twice
re-runs nothing that finished and resumes what did not.

:func:`submit` returns at once with the jobs (Slurm dependencies via ``after_ok``);
:func:`launch` submits and waits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import submitit

from ..config.run_config import RunConfig
from ..core import ConfigError
from ..runtime.lease import IF_BUSY
from ..runtime.preemption import Interrupted, StopRequest, sigint_ignored
from ..safe_files import ensure_private_directory
from ..tracking.store import resolve_tracking_uri
from ..tracking.tracker import Tracker
from .inprocess import InProcessExecutor
from .job_errors import one_line, wait_jobs
from .ledger import record
from .pool import Outcome, run_pool
from .preflight import validate
from .profiles import ClusterProfile
from .sqlite_cluster import check_sqlite_for_slurm
from .submission import (
    Submission,
    SweepInterrupted,
    collect,
    interruption,
    raise_failures,
    say,
)
from .train_job import TrainJob, job_threads

__all__ = [
    "LOCAL_TIMEOUT_MIN",
    "submit",
    "launch",
    "launch_local",
]

log = logging.getLogger("primebench")

LOCAL_TIMEOUT_MIN = 24 * 60  # time limit of a local job without a profile


def _executor(
    cluster: str,
    folder: Path,
    profile: ClusterProfile | None,
    after: list[str] | None,
    post_mortem: bool = False,
) -> Any:
    if cluster == "debug" and not post_mortem:
        # submitit's DebugExecutor opens pdb on a failed job (benchmarks.launch.inprocess).
        return InProcessExecutor(folder)
    if cluster == "slurm":
        profile = profile or ClusterProfile()
        # Time-outs after which submitit stops requeueing (preemptions are not counted).
        executor = submitit.AutoExecutor(
            folder=str(folder), cluster=cluster, slurm_max_num_timeout=profile.max_requeues
        )
        executor.update_parameters(**profile.executor_parameters("slurm"))
        if after:
            executor.update_parameters(
                slurm_additional_parameters={"dependency": "afterok:" + ":".join(after)}
            )
        return executor
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    if cluster == "local":
        local = profile or ClusterProfile(timeout_min=LOCAL_TIMEOUT_MIN)
        executor.update_parameters(**local.executor_parameters("local"))
    return executor


def submit(
    configs: list[RunConfig],
    cluster: str = "local",
    *,
    profile: ClusterProfile | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    after: list[str] | None = None,
    threads: int | None = None,
    if_busy: str = "wait",
    post_mortem: bool = False,
) -> Submission:
    """Submit one job per config and return without waiting.

    ``after``: Slurm job ids that must finish successfully first (``afterok``).
    ``threads``: CPU threads per local rank (default: the machine's cores over the ranks).
    ``if_busy``: a job whose run is being run elsewhere waits for it ("wait") or fails
    naming the holder ("exit").
    ``post_mortem``: a failed ``debug`` job opens pdb (submitit's DebugExecutor), for a
    person at the terminal; otherwise its exception is raised.
    Everything is checked (:func:`validate`, tracking store; on Slurm, a sqlite store
    that the jobs would write from several nodes or over a network filesystem is refused,
    :mod:`benchmarks.launch.sqlite_cluster`) before anything is submitted; local and Slurm jobs
    are recorded in the ledger (``benchmarks.launch.ledger``).
    """
    validate(configs, cluster, profile, after=after)
    if if_busy not in IF_BUSY:
        raise ConfigError(f"--if-busy: expected one of {', '.join(IF_BUSY)}, got {if_busy!r}")
    uri = resolve_tracking_uri(tracking_uri)
    if cluster == "slurm":  # before the store is created on this machine
        check_sqlite_for_slurm(uri, profile)
    # Fails fast on an unreachable store, and creates the store's tables and the MLflow
    # experiments here, once, rather than in concurrent jobs racing on a sqlite file.
    tracker = Tracker(uri)
    for name in sorted({c.experiment for c in configs}):
        tracker.experiment_id(name)
    runs_dir = Path(runs_dir).resolve()
    ensure_private_directory(runs_dir / "submitit", "job folder")
    folder = ensure_private_directory(runs_dir / "submitit" / cluster, "job folder")
    executor = _executor(cluster, folder, profile, after, post_mortem)
    n = len(configs)
    jobs = executor.map_array(
        TrainJob(job_threads(cluster, profile, threads), if_busy),
        [c.to_dict() for c in configs],
        [uri] * n,
        [str(runs_dir)] * n,
    )
    if cluster != "debug":  # debug jobs run in this process when waited on
        record(runs_dir, configs, [str(j.job_id) for j in jobs], cluster, after)
    return Submission(list(configs), jobs, cluster, folder)


def launch(
    configs: list[RunConfig],
    cluster: str = "local",
    *,
    profile: ClusterProfile | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    parallel: int = 1,
    if_busy: str = "wait",
    post_mortem: bool = False,
) -> list[dict[str, Any]]:
    """Run ``configs`` on ``cluster`` and wait for them; returns each job's result.

    ``parallel`` (local only) caps simultaneous jobs (:func:`launch_local`); every
    local config is attempted before the failures are raised together, a line each (the
    exception a job's traceback ends with, and its log; the whole traceback with
    ``post_mortem``). A Slurm sweep is one job array limited by
    ``profile.array_parallelism``. ``post_mortem``: a failed ``debug`` job opens pdb.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel: must be >= 1, got {parallel}")
    kwargs = {
        "profile": profile,
        "tracking_uri": tracking_uri,
        "runs_dir": runs_dir,
        "if_busy": if_busy,
    }
    if cluster != "local":
        submission = submit(configs, cluster, post_mortem=post_mortem, **kwargs)
        if cluster == "slurm":
            say(
                f"submitted job array {submission.array_id} ({len(configs)} tasks); "
                f"logs under {submission.folder}"
            )
        return wait_jobs(submission, tracebacks=post_mortem)
    outcomes = launch_local(configs, parallel=parallel, **kwargs)
    if not post_mortem:  # a job's error holds its whole traceback: keep its last line
        outcomes = [one_line(o) for o in outcomes]
    raise_failures(outcomes)
    return [o.result for o in outcomes]


def launch_local(
    configs: list[RunConfig],
    *,
    profile: ClusterProfile | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    parallel: int = 1,
    if_busy: str = "wait",
) -> list[Outcome[RunConfig]]:
    """Run ``configs`` as local processes, at most ``parallel`` at once (the next one
    starts when one ends), each on the machine's cores over ``parallel`` x its ranks.

    Every config is attempted even when one fails; returns each one's outcome (result or
    error, and when it ran) in the configs' order. Ctrl-C (SIGINT to the process group,
    which reaches the running jobs too) starts no further job, waits for the running
    ones to save and stop, and raises :class:`SweepInterrupted`; a second Ctrl-C stops
    waiting at once.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel: must be >= 1, got {parallel}")
    validate(configs, "local", profile)
    ranks = profile.tasks_per_node if profile else 1
    threads = max(1, (os.cpu_count() or 1) // (parallel * ranks))
    kwargs = {"profile": profile, "tracking_uri": tracking_uri, "runs_dir": runs_dir}
    total = len(configs)

    def start(config: RunConfig) -> Any:
        # submitit's controller must not act on Ctrl-C (benchmarks.runtime.preemption);
        # its job does.
        # A Ctrl-C in these few hundred milliseconds is lost to every process: the next
        # one then acts as the first.
        with sigint_ignored():
            submission = submit([config], "local", threads=threads, if_busy=if_busy, **kwargs)
        return submission.jobs[0]

    def started(index: int, config: RunConfig, job: Any) -> None:
        say(
            f"[{index + 1}/{total}] {config.variant} ({config.run_id}) running, "
            f"log: {job.paths.stderr}"
        )

    def ended(outcome: Outcome[RunConfig]) -> None:
        state = "finished"
        if outcome.error is not None:
            state = "interrupted" if interruption(outcome.error) else "failed"
        say(f"    {outcome.item.variant} {state} in {outcome.seconds:.0f} s")

    with StopRequest() as stop:
        outcomes = run_pool(
            configs,
            parallel,
            start,
            collect,
            fatal=(Interrupted, KeyboardInterrupt),
            on_start=started,
            on_end=ended,
            stop=lambda: stop.requested,
        )
    if stop.requested:
        raise SweepInterrupted(outcomes)
    return outcomes
