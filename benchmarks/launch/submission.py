"""Jobs once submitted: their results, and the error that names the runs that failed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.run_config import RunConfig
from ..runtime.preemption import Interrupted, Terminated
from .pool import Outcome

__all__ = [
    "LaunchError",
    "SweepInterrupted",
    "Submission",
    "wait",
    "collect",
    "interruption",
    "summary",
    "raise_failures",
    "say",
    "print_results",
]

# A traceback's closing line, "module.ExceptionName: message", as submitit reports a job's.
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt(?:ed)?|Terminated)\b.*$", re.M)
_LOG = re.compile(r"\(log: [^)]*\)\s*$")
# The exceptions of a job stopped by a signal, as a traceback names them.
_STOPS = (
    *(f"{stop.__module__}.{stop.__qualname__}" for stop in (Interrupted, Terminated)),
    "KeyboardInterrupt",
)


class LaunchError(RuntimeError):
    """One or more jobs of a sweep failed."""


def _raised(error: BaseException) -> str | None:
    """The last exception line of the traceback in ``error``'s message, if any."""
    found = _RAISED.findall(str(error))
    return found[-1] if found else None


def summary(error: BaseException) -> str:
    """One line for a job's error: the exception its traceback ends with (submitit's
    message holds the whole traceback) and the job's log."""
    text = str(error)
    line = _raised(error) or (text.splitlines() or [type(error).__name__])[0]
    log = _LOG.search(text)
    return line + (f" {log.group(0).strip()}" if log and log.group(0) not in line else "")


def interruption(error: BaseException | None) -> str | None:
    """How a job that raised ``error`` was stopped by a signal ("stopped on signal SIGINT
    at step 157; checkpoint ..."), or None if it did not fail or failed otherwise."""
    if isinstance(error, Interrupted | KeyboardInterrupt):
        return str(error) or type(error).__name__
    line = _raised(error) if error is not None else None
    if line is None or line.partition(":")[0] not in _STOPS:
        return None
    return line.partition(": ")[2] or line


class SweepInterrupted(Exception):  # noqa: N818 - a state, like KeyboardInterrupt
    """Ctrl-C stopped a sweep of local jobs: the running jobs saved and stopped, no other
    job started. ``outcomes``: every job's, in the sweep's order."""

    def __init__(self, outcomes: list[Outcome[RunConfig]]):
        self.outcomes = outcomes
        stopped = [o for o in outcomes if o.begun and interruption(o.error)]
        waiting = [o for o in outcomes if not o.begun]
        super().__init__(f"{len(stopped)} run(s) saved and stopped, {len(waiting)} not started")

    def lines(self) -> list[str]:
        """A line per run that did not finish: interrupted, failed or not started."""
        out = []
        for o in self.outcomes:
            name = f"{o.item.experiment}/{o.item.variant} [{o.item.run_id}]"
            if not o.begun:
                out.append(f"{name}: not started")
            elif (how := interruption(o.error)) is not None:
                out.append(f"{name}: interrupted ({how})")
            elif o.error is not None:
                out.append(f"{name}: failed: {summary(o.error)}")
        return out


@dataclass
class Submission:
    """Jobs of one sweep, in the order of its configs."""

    configs: list[RunConfig]
    jobs: list[Any]
    cluster: str
    folder: Path

    @property
    def job_ids(self) -> list[str]:
        return [str(j.job_id) for j in self.jobs]

    @property
    def array_id(self) -> str:
        return self.job_ids[0].split("_")[0] if self.jobs else ""


def say(message: str) -> None:
    """A progress line, flushed at once (the sweep's log is often a file)."""
    print(message, flush=True)


def print_results(results: list[dict[str, Any]]) -> None:
    """A line per job result: its run id, whether it ran now, and its MLflow run."""
    for r in results:
        state = "already complete" if r["skipped"] else "done"
        print(f"  {r['run_id']}  {state}  (MLflow run {r['mlflow_run_id']})")


def _result(job: Any) -> Any:
    """The main rank's result (submitit returns one per task of a multi-task job)."""
    return job.results()[0]


def collect(job: Any) -> Any:
    """A local job's result; its failure names the job's log."""
    try:
        return _result(job)
    except (Interrupted, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the log's path
        raise LaunchError(f"{err} (log: {job.paths.stderr})") from err


def wait(submission: Submission) -> list[dict[str, Any]]:
    """Wait for every job; raise :class:`LaunchError` naming the failed configs and logs."""
    results, failures = [], []
    for config, job in zip(submission.configs, submission.jobs, strict=True):
        try:
            results.append(_result(job))
            if submission.cluster == "slurm":
                say(f"    {config.variant} ({config.run_id}) done")
        except Interrupted:
            raise  # Ctrl-C of an in-process sweep stops the sweep, not only this run
        except Exception as err:  # noqa: BLE001 - collected and reported together
            where = f" (log: {job.paths.stderr})" if submission.cluster != "debug" else ""
            failures.append(f"{config.variant} [{config.run_id}]: {err}{where}")
    if failures:
        raise LaunchError("failed runs:\n  " + "\n  ".join(failures))
    return results


def raise_failures(outcomes: list[Outcome[RunConfig]]) -> None:
    """:class:`LaunchError` naming every failed run of ``outcomes`` and its error, if any."""
    failed = [
        f"{o.item.experiment}/{o.item.variant} [{o.item.run_id}]: {o.error}"
        for o in outcomes
        if o.error
    ]
    if failed:
        raise LaunchError("failed runs:\n  " + "\n  ".join(failed))
