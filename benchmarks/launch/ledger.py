"""The submission ledger: which job runs which run config.

``primebench status`` joins three sources: the run configs (what should exist), MLflow
(what ran, found by run id) and the scheduler (what is queued). Slurm knows jobs, not
run ids, so every submission appends one JSON line per job to
``<runs dir>/submitit/ledger.jsonl``: run id, experiment, variant, scale, job id,
cluster, the jobs it waits for, and the submit time.

Each line is written with a single ``write`` on a file opened for appending, so
concurrent submitters do not interleave partial lines on a local file system. A line
that does not parse (a crash mid-write, a hand edit) is skipped with a warning: the
ledger is a convenience, never a reason for ``status`` to fail. Neither the ledger nor
its folder is followed through a symbolic link (the runs directory may be shared): a
link is reported and left alone, and the submission stands.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config.run_config import RunConfig
from ..safe_files import (
    UnsafePath,
    check_not_symlink,
    ensure_directory,
    open_nofollow,
    read_nofollow,
)

__all__ = ["LedgerEntry", "ledger_path", "record", "read_ledger", "latest_by_run_id"]

log = logging.getLogger("primebench")

LEDGER_NAME = "ledger.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    """One submitted job."""

    run_id: str
    experiment: str
    variant: str
    scale: str
    job_id: str
    cluster: str
    submitted: float  # Unix time
    after: list[str] = field(default_factory=list)  # job ids it depends on (afterok)

    @property
    def array_id(self) -> str:
        """The Slurm job array id (the part of ``1234_5`` before the underscore)."""
        return self.job_id.split("_")[0]


def ledger_path(runs_dir: str | Path) -> Path:
    """Where the ledger of ``runs_dir`` lives."""
    return Path(runs_dir) / "submitit" / LEDGER_NAME


def record(
    runs_dir: str | Path,
    configs: Sequence[RunConfig],
    job_ids: Sequence[str],
    cluster: str,
    after: Sequence[str] | None = None,
) -> Path:
    """Append one line per (config, job id) to the ledger of ``runs_dir``; return its path."""
    path = ledger_path(runs_dir)
    now = time.time()
    try:
        ensure_directory(path.parent, "submission folder")
        fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "submission ledger")
    except UnsafePath as err:
        log.error("%s; jobs %s are not recorded in it", err, ", ".join(map(str, job_ids)))
        return path
    try:
        for config, job_id in zip(configs, job_ids, strict=True):
            entry = LedgerEntry(
                run_id=config.run_id,
                experiment=config.experiment,
                variant=config.variant,
                scale=config.scale,
                job_id=str(job_id),
                cluster=cluster,
                submitted=now,
                after=[str(a) for a in after or ()],
            )
            os.write(fd, (json.dumps(asdict(entry), sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)
    return path


def _parse(line: str) -> LedgerEntry:
    raw = json.loads(line)
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return LedgerEntry(
        run_id=str(raw["run_id"]),
        experiment=str(raw["experiment"]),
        variant=str(raw["variant"]),
        scale=str(raw.get("scale", "")),
        job_id=str(raw["job_id"]),
        cluster=str(raw["cluster"]),
        submitted=float(raw.get("submitted", 0.0)),
        after=[str(a) for a in raw.get("after") or ()],
    )


def read_ledger(runs_dir: str | Path) -> list[LedgerEntry]:
    """Every readable entry of the ledger of ``runs_dir``, oldest first ([] if none)."""
    path = ledger_path(runs_dir)
    if not path.is_file():
        return []
    try:
        check_not_symlink(path.parent, "submission folder")
        text = read_nofollow(path, "submission ledger").decode(errors="replace")
    except UnsafePath as err:
        log.warning("%s; not reading it", err)
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(_parse(line))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("%s:%d: skipping a corrupt ledger line (%s)", path, number, err)
    return entries


def latest_by_run_id(entries: Sequence[LedgerEntry]) -> dict[str, LedgerEntry]:
    """The most recent submission of each run id (a re-submission supersedes)."""
    out: dict[str, LedgerEntry] = {}
    for entry in sorted(entries, key=lambda e: e.submitted):
        out[entry.run_id] = entry
    return out
