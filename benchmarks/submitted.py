"""Jobs once submitted: their results, and the error that names the runs that failed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig
from .pool import Outcome
from .preemption import Interrupted

__all__ = ["LaunchError", "Submission", "wait", "collect", "raise_failures", "say", "print_results"]


class LaunchError(RuntimeError):
    """One or more jobs of a sweep failed."""


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
    failed = [f"{o.item.variant} [{o.item.run_id}]: {o.error}" for o in outcomes if o.error]
    if failed:
        raise LaunchError("failed runs:\n  " + "\n  ".join(failed))
