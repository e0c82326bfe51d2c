"""What runs inside a job: :class:`TrainJob`, the callable every launcher submits, and
the CPU threads its ranks use.

On the scheduler's warning signal the run has saved its checkpoint and raised
:class:`benchmarks.runtime.preemption.Preempted`; the job then lets submitit requeue it with the
same arguments (see :mod:`benchmarks.launch.launcher`).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import submitit

from ..runtime.distributed import in_submitit_job
from ..runtime.preemption import WARNING_SIGNAL, Preempted, sigint_restored
from ..training.runner import execute
from .profiles import ClusterProfile

__all__ = ["TrainJob", "job_threads"]


class TrainJob(submitit.helpers.Checkpointable):
    """The callable of every job: ``execute`` on each rank, requeued on the warning signal.

    submitit's signal handler (installed before this runs) calls :meth:`checkpoint`, which
    returns this same call to resubmit; the training loop has by then saved its
    checkpoint, so nothing else needs saving here.

    ``threads``: CPU threads of each rank, decided at submission (:func:`job_threads`) and
    carried through requeues; None leaves the process's own setting (in-process jobs).
    ``if_busy``: what a job does when another process holds its run's lease
    (:func:`benchmarks.training.runner.execute`).
    """

    def __init__(self, threads: int | None = None, if_busy: str = "wait"):
        self.threads, self.if_busy = threads, if_busy

    def __call__(self, config: dict[str, Any], tracking_uri: str, runs_dir: str) -> Any:
        if self.threads is not None:
            # This is the job's own process. Jobs inherit the submitting shell's
            # environment, whose PRIMEBENCH_THREADS must not override the submission's
            # layout: results differ in the last float32 bits with the thread count.
            os.environ["PRIMEBENCH_THREADS"] = str(self.threads)
            # A local sweep starts its jobs with SIGINT ignored (benchmarks.runtime.preemption).
            sigint_restored()
        try:
            result = execute(config, tracking_uri, runs_dir, if_busy=self.if_busy)
        except Preempted as stop:
            handler = signal.getsignal(stop.signum)
            if callable(handler):
                # submitit: on the main rank, requeue the job and exit; it returns on the
                # others, which wait here to be stopped with the job rather than report
                # an outcome of their own. A second warning must not requeue it again
                # (Slurm refuses, and the job would end in an error).
                signal.signal(stop.signum, signal.SIG_IGN)
                handler(stop.signum, None)
                if os.environ.get("SLURM_JOB_ID"):
                    time.sleep(3600)
            raise
        # Done: a warning that comes now, while the process exits, must neither requeue
        # the job nor kill it (Python restores the default action, termination, to
        # handled signals when it shuts down; an ignored one stays ignored).
        if in_submitit_job():
            signal.signal(WARNING_SIGNAL, signal.SIG_IGN)
        return result


def job_threads(
    cluster: str, profile: ClusterProfile | None, threads: int | None = None
) -> int | None:
    """CPU threads of each rank: on Slurm the profile's ``cpus_per_task``; locally
    ``threads``, else the machine's cores over the ranks; None in-process (debug)."""
    if cluster == "slurm":
        return (profile or ClusterProfile()).cpus_per_task
    if cluster == "local":
        ranks = profile.tasks_per_node if profile else 1
        return threads or max(1, (os.cpu_count() or 1) // ranks)
    return None
