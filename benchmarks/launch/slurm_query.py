"""What Slurm says about submitted jobs: ``squeue`` for queued and running jobs, ``sacct``
for finished ones (when accounting is enabled).

The parsers are pure functions of the commands' text, so they are tested without a
cluster; :func:`query_jobs` runs the commands when they exist and returns {} otherwise.
Job arrays appear as one line per task (``1234_5``) or, for tasks still pending, as a
range (``1234_[0-11%4]``); both are expanded to one entry per task.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SlurmJob",
    "expand_job_ids",
    "parse_squeue",
    "parse_sacct",
    "query_jobs",
    "SQUEUE_FORMAT",
    "SACCT_FIELDS",
]

SQUEUE_FORMAT = "%i|%T|%r"  # job id | state | reason
SACCT_FIELDS = "JobID,State"
ACTIVE_STATES = frozenset(
    {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}
)

_ARRAY_RANGE = re.compile(r"^(?P<array>\d+)_\[(?P<spec>[^\]]+)\]$")


@dataclass(frozen=True)
class SlurmJob:
    """One job (or array task) as Slurm reports it."""

    job_id: str
    state: str  # e.g. PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED
    reason: str = ""  # squeue's reason, e.g. Dependency, Priority, DependencyNeverSatisfied

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def describe(self) -> str:
        """``STATE`` or ``STATE (reason)`` for a pending job with a telling reason."""
        if self.reason and self.reason not in ("None", "(null)") and self.state == "PENDING":
            return f"{self.state} ({self.reason})"
        return self.state


def expand_job_ids(job_id: str) -> list[str]:
    """``1234_[0-2,5%2]`` -> 1234_0, 1234_1, 1234_2, 1234_5; any other id -> [itself]."""
    match = _ARRAY_RANGE.match(job_id.strip())
    if match is None:
        return [job_id.strip()]
    array, spec = match["array"], match["spec"].split("%")[0]
    out = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return [job_id.strip()]
        out += [f"{array}_{i}" for i in range(int(first), int(last or first) + 1)]
    return out


def _state(raw: str) -> str:
    # sacct writes "CANCELLED by 1000"; squeue may abbreviate nothing but be safe.
    return raw.strip().split(" ")[0].rstrip("+").upper()


def parse_squeue(text: str) -> dict[str, SlurmJob]:
    """Parse ``squeue -h -r -o '%i|%T|%r'`` output into job id -> job."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        state, reason = _state(parts[1]), parts[2].strip() if len(parts) > 2 else ""
        for job_id in expand_job_ids(parts[0]):
            jobs[job_id] = SlurmJob(job_id, state, reason)
    return jobs


def parse_sacct(text: str) -> dict[str, SlurmJob]:
    """Parse ``sacct -n -P -X -o JobID,State`` output into job id -> job (last line wins:
    a requeued job's newest record comes last)."""
    jobs: dict[str, SlurmJob] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0] or "." in parts[0]:  # steps: 1234_0.batch
            continue
        state = _state(parts[1])
        for job_id in expand_job_ids(parts[0]):
            jobs[job_id] = SlurmJob(job_id, state)
    return jobs


def _run(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    # squeue exits 1 when every id asked for has left the queue: nothing to report.
    return done.stdout if done.returncode == 0 else ""


def query_jobs(job_ids: Iterable[str]) -> dict[str, SlurmJob]:
    """Slurm's view of ``job_ids`` (array task ids ``1234_5`` or plain ids): squeue for
    live jobs, sacct for the rest; jobs neither knows are left out."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    arrays = ",".join(sorted({j.split("_")[0] for j in wanted}))
    jobs = parse_sacct(_run(["sacct", "-n", "-P", "-X", "-o", SACCT_FIELDS, "-j", arrays]))
    jobs.update(parse_squeue(_run(["squeue", "-h", "-r", "-o", SQUEUE_FORMAT, "-j", arrays])))
    return {j: jobs[j] for j in wanted if j in jobs}
