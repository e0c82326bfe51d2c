"""Jobs of ``--cluster debug`` (``primebench run``): run in this process when waited on,
as submitit's ``DebugExecutor`` runs them, but a failure is raised to the caller.

submitit's ``DebugJob.results`` catches any exception of the job and calls
``pdb.post_mortem`` before raising it again: from a script, a pipe or ``nohup`` the
command then waits at a ``(Pdb)`` prompt for a person who is not there.
:class:`InProcessJob` runs the call the same way (the environment of its submission, its
log under the submitit folder) with no debugger, and runs it at most once: asking again
for the results of a failed job raises the same exception instead of training again.
``primebench --debug`` keeps submitit's own ``DebugExecutor`` and its post-mortem.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from submitit.core.utils import DelayedSubmission, JobPaths
from submitit.local.debug import DebugExecutor, DebugJob

__all__ = ["InProcessExecutor", "InProcessJob"]


@contextmanager
def _environment(environ: dict[str, str]) -> Iterator[None]:
    """``os.environ`` as it was when the job was submitted, restored afterwards."""
    backup = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(backup)


@contextmanager
def _job_logs(paths: JobPaths) -> Iterator[None]:
    """The root logger also writes to the job's log files (warnings and up to stderr)."""
    root = logging.getLogger("")
    paths.stdout.parent.mkdir(exist_ok=True, parents=True)
    handlers = [logging.FileHandler(paths.stdout), logging.FileHandler(paths.stderr)]
    handlers[0].setLevel(logging.DEBUG)
    handlers[1].setLevel(logging.WARNING)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


class InProcessJob(DebugJob):
    """A job run in this process by :meth:`results`; its exception is raised, never
    debugged, and raised again (not re-run) by later calls."""

    def __init__(self, folder: Path, submission: DelayedSubmission) -> None:
        super().__init__(folder, submission)
        self._error: Exception | None = None

    def results(self) -> list[Any]:
        self._check_not_cancelled()
        if self._error is not None:
            raise self._error
        if self._submission.done():
            return [self._submission.result()]
        with _environment(self.environ), _job_logs(self.paths):
            try:
                return [self._submission.result()]
            except Exception as err:
                self._error = err
                raise

    def exception(self) -> Exception | None:  # type: ignore[override]
        self._check_not_cancelled()
        try:
            self.results()
        except Exception as err:  # noqa: BLE001 - the job's failure is the answer
            return err
        return None

    def done(self, force_check: bool = False) -> bool:
        self.exception()  # runs the job if it has not run
        return True

    @property
    def state(self) -> str:
        if self._error is not None:
            return "FAILED"
        return super().state


class InProcessExecutor(DebugExecutor):
    """submitit's in-process executor, with :class:`InProcessJob` jobs."""

    job_class = InProcessJob

    def _internal_process_submissions(
        self, delayed_submissions: list[DelayedSubmission]
    ) -> list[InProcessJob]:  # type: ignore[override]
        return [InProcessJob(self.folder, ds) for ds in delayed_submissions]
