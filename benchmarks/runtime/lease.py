"""An exclusive lease on a run directory, so that one run id trains in one place at a time.

Two starts of one config (a sweep submitted twice, two shells, a requeued job beside a
stray copy) would otherwise train side by side, create several MLflow runs for one run
id and log each metric point several times. The lease is the file ``runs/<id>/lease``
held under an exclusive ``flock``: the kernel (or, on NFSv4, the server) releases it
when its holder exits, however it exits, so a crash leaves no stale lock to clean up.
The holder writes its host, pid, job id and start time into the file, for the messages
of whoever finds it taken; that record stays after release (the next holder rewrites it).

Run ids are predictable and a runs directory may be shared, so nothing in it is
followed through a symbolic link (:mod:`benchmarks.safe_files`): the lease is opened
with ``O_NOFOLLOW`` relative to the run directory's own descriptor, and a run directory,
``checkpoints/`` or ``artifacts/`` that is a link, or a lease that is not a regular
file, stops the start with :class:`benchmarks.safe_files.UnsafePath` naming it.

A second starter either waits for the holder to finish (``if_busy="wait"``; it then
usually finds the run complete and skips it) or stops at once with :class:`RunBusy`
naming the holder (``if_busy="exit"``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..safe_files import UnsafePath, ensure_directory, open_directory, open_nofollow

__all__ = ["IF_BUSY", "LEASE_FILE", "RunBusy", "RunLease", "describe_holder"]

log = logging.getLogger("primebench")

LEASE_FILE = "lease"
IF_BUSY = ("wait", "exit")
_REMIND_EVERY_S = 600.0
# What the run writes into its directory; a link in their place would take its writes.
_RUN_SUBDIRS = ("checkpoints", "artifacts")


class RunBusy(RuntimeError):
    """The run directory is leased by another process."""


def describe_holder(record: dict[str, Any] | None) -> str:
    """``host:pid (job J) since T`` from a lease record, or a placeholder."""
    if not record:
        return "another process (its record is not written yet)"
    job = f" (job {record['job_id']})" if record.get("job_id") else ""
    return (
        f"{record.get('host', '?')}:{record.get('pid', '?')}{job} since {record.get('since', '?')}"
    )


class RunLease:
    """The lease on ``run_dir``; use as a context manager after :meth:`acquire`.

    ``job_id``: the scheduler's job id of this process, written into the record.
    """

    def __init__(self, run_dir: str | Path, job_id: str | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEASE_FILE
        self.job_id = job_id
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def holder(self) -> dict[str, Any] | None:
        """The record of the last process that took the lease (None if unreadable, or if
        the lease or the run directory is a symbolic link)."""
        try:
            with os.fdopen(self._open(os.O_RDONLY), encoding="utf-8") as handle:
                record = json.loads(handle.read())
        except (OSError, ValueError, UnsafePath):
            return None
        return record if isinstance(record, dict) else None

    def _open(self, flags: int) -> int:
        """The lease file's descriptor, opened in the real run directory without
        following a link (:class:`UnsafePath` otherwise)."""
        dir_fd = open_directory(self.run_dir, "run directory")
        try:
            return open_nofollow(self.path, flags, "run lease", 0o644, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def _check_run_dir(self) -> None:
        """Create the run directory; refuse it, or a subdirectory the run writes into,
        if it is a symbolic link or not a directory."""
        ensure_directory(self.run_dir, "run directory")
        for name in _RUN_SUBDIRS:
            sub = self.run_dir / name
            if os.path.lexists(sub):
                ensure_directory(sub, f"run's {name} directory")

    def try_acquire(self) -> bool:
        """Take the lease if it is free; False if another process holds it."""
        if self._file is not None:
            return True
        self._check_run_dir()
        fd = self._open(os.O_RDWR | os.O_CREAT)
        handle = os.fdopen(fd, "r+", encoding="utf-8")  # kept open while the lease is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.close()
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                return False
            raise RunBusy(
                f"{self.path}: cannot lock it ({err.strerror}); the runs directory must be "
                "on a filesystem with file locks (local disk, NFSv4, Lustre with -o flock)"
            ) from None
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "job_id": self.job_id,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record, sort_keys=True))
        handle.flush()
        os.fsync(handle.fileno())
        self._file = handle
        return True

    def acquire(self, if_busy: str = "wait", poll_s: float = 2.0) -> None:
        """Take the lease, waiting for the holder or raising :class:`RunBusy` (``if_busy``)."""
        if if_busy not in IF_BUSY:
            raise ValueError(f"if_busy: expected one of {', '.join(IF_BUSY)}, got {if_busy!r}")
        reminded = None
        while not self.try_acquire():
            holder = describe_holder(self.holder())
            if if_busy == "exit":
                raise RunBusy(
                    f"run {self.run_dir.name} is being run by {holder} ({self.path}); not "
                    "starting a second copy. Wait for it, or stop it to take over (its "
                    "checkpoint is resumed)"
                )
            now = time.monotonic()
            if reminded is None or now - reminded >= _REMIND_EVERY_S:
                log.warning("run %s: waiting for %s to finish with it", self.run_dir.name, holder)
                reminded = now
            time.sleep(poll_s)

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
