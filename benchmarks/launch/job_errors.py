"""A failed job's error as one line: the exception its traceback ends with and its log.

submitit reports a failed local or Slurm job with the job's whole traceback in the
error's message; ``primebench`` prints one line per failed run instead (the traceback
stays in the job's log, and ``primebench --debug`` prints it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config.run_config import RunConfig
from .pool import Outcome
from .submission import LaunchError, Submission, summary, wait

__all__ = ["one_line", "wait_jobs"]


def one_line(outcome: Outcome[RunConfig]) -> Outcome[RunConfig]:
    """``outcome`` of a local job with its error as one line (exception, and log)."""
    if outcome.error is None:
        return outcome
    return replace(outcome, error=LaunchError(summary(outcome.error)))


def wait_jobs(submission: Submission, tracebacks: bool = False) -> list[dict[str, Any]]:
    """:func:`benchmarks.launch.submission.wait`; its :class:`LaunchError` has a line per failed
    run (for an in-process job its exception, else the exception the job's traceback
    ends with and the job's log) unless ``tracebacks``."""
    try:
        return wait(submission)
    except LaunchError as err:
        if tracebacks:
            raise
        lines = []
        for config, job in zip(submission.configs, submission.jobs, strict=True):
            try:
                error = job.exception()
            except Exception as unknown:  # noqa: BLE001 - the job's state is the answer
                error = unknown
            if error is None:
                continue
            if submission.cluster == "debug":  # the job's own exception
                line = f"{type(error).__name__}: {error}"
            else:  # submitit's, whose message holds the job's traceback
                line = f"{summary(error)} (log: {job.paths.stderr})"
            lines.append(f"{config.variant} [{config.run_id}]: {line}")
        raise LaunchError("failed runs:\n  " + "\n  ".join(lines or [str(err)])) from err
