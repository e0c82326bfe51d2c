"""``primebench status``: where every run of a sweep stands, without waiting on it.

One row per run config: MLflow says what ran (state tag, requeue count, the last step
of ``train/loss``), the submission ledger says what was submitted as which job, and
Slurm (when ``squeue`` / ``sacct`` exist) what became of that job. A run is

* ``not submitted``: in neither the ledger nor MLflow;
* ``pending``: submitted, no MLflow run yet (queued, or waiting for its dependency);
* ``running`` / ``requeued Nx`` / ``done`` / ``failed``: its MLflow run's state;
* ``failed``, too, when its job left Slurm without ever starting the MLflow run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config.run_config import RunConfig
from ..tracking.store_reader import StoreReader, requeue_count, run_state
from .ledger import LedgerEntry, latest_by_run_id, read_ledger
from .slurm_query import SlurmJob, query_jobs

__all__ = ["StatusRow", "collect_status", "format_status"]

SlurmLookup = Callable[[Sequence[str]], dict[str, SlurmJob]]


@dataclass(frozen=True)
class StatusRow:
    """What is known about one run config."""

    experiment: str
    variant: str
    run_id: str
    state: str
    step: int | None  # optimizer steps reached (None: not known / not started)
    total_steps: int
    job_id: str = ""
    slurm: str = ""  # Slurm's state of the job, "" when not a Slurm job or not known

    @property
    def steps_text(self) -> str:
        if self.total_steps == 0:
            return "-"  # evaluation only
        return f"{'-' if self.step is None else self.step}/{self.total_steps}"


def _state(run: object | None, entry: LedgerEntry | None, job: SlurmJob | None) -> str:
    if run is not None:
        state = run_state(run)
        count = requeue_count(run)
        if state == "requeued":
            return f"requeued {count}x"
        if state == "running" and count:
            return f"running (requeued {count}x)"
        return state
    if entry is None:
        return "not submitted"
    if job is not None and not job.active:
        return "failed"  # the job ended before it could start its MLflow run
    return "pending"


def collect_status(
    configs: Sequence[RunConfig],
    tracking_uri: str | None,
    runs_dir: str | Path,
    slurm: SlurmLookup = query_jobs,
) -> list[StatusRow]:
    """A :class:`StatusRow` per config, in order. ``slurm`` maps job ids to Slurm's view
    (a stub in tests); it is asked only about the ledger's Slurm jobs."""
    store = StoreReader(tracking_uri)
    ledger = latest_by_run_id(read_ledger(runs_dir))
    entries = {c.run_id: ledger.get(c.run_id) for c in configs}
    slurm_ids = [e.job_id for e in entries.values() if e is not None and e.cluster == "slurm"]
    jobs = slurm(slurm_ids) if slurm_ids else {}
    rows = []
    for config in configs:
        run = store.find(config.experiment, config.run_id) if store.client else None
        entry = entries[config.run_id]
        job = jobs.get(entry.job_id) if entry is not None else None
        step = store.step_reached(run) if run is not None else None
        if run is not None and step is None and run_state(run) == "done":
            step = config.train.steps  # finished training that logged no loss
        rows.append(
            StatusRow(
                experiment=config.experiment,
                variant=config.variant,
                run_id=config.run_id,
                state=_state(run, entry, job),
                step=step,
                total_steps=config.train.steps,
                job_id=entry.job_id if entry is not None and entry.cluster != "debug" else "",
                slurm=job.describe() if job is not None else "",
            )
        )
    return rows


def format_status(rows: Sequence[StatusRow]) -> str:
    """An aligned table with a header, plus a one-line count of states."""
    header = ("experiment", "variant", "run id", "state", "steps", "job", "slurm")
    table = [header] + [
        (r.experiment, r.variant, r.run_id, r.state, r.steps_text, r.job_id or "-", r.slurm or "-")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    counts: dict[str, int] = {}
    for r in rows:
        key = re.sub(r" \(.*\)| \d+x$", "", r.state)  # "requeued 2x" -> requeued
        counts[key] = counts.get(key, 0) + 1
    lines.append(f"{len(rows)} run(s): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return "\n".join(lines)
