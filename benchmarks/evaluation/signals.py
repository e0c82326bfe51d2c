"""Stop an evaluation at a shard boundary on a signal, keeping every finished shard.

Training reacts to signals at optimizer-step boundaries (:mod:`benchmarks.runtime.preemption`);
an evaluation reacts at shard boundaries. Within :class:`EvaluationSignals`, the
scheduler's warning signal (time limit, preemption) and SIGINT / SIGTERM are recorded;
:meth:`EvaluationSignals.raise_if_stopped`, called after each saved shard and while a
rank waits for the others, raises :class:`EvaluationPreempted` (the job requeues itself
and the next allocation continues) or :class:`EvaluationInterrupted` (the next start
continues). A second Ctrl-C stops at once, as ``KeyboardInterrupt``.

Testing hook: ``PRIMEBENCH_SIGNAL_AT_SHARD=STAGE/I`` makes the process that saves shard I
of stage STAGE send itself the warning signal (``STAGE/I:SIGINT`` another signal); a
resumed evaluation does not compute that shard again, so the hook fires once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from ..runtime.preemption import STOP_SIGNALS, WARNING_SIGNAL, Interrupted, Preempted

__all__ = [
    "EvaluationSignals",
    "EvaluationPreempted",
    "EvaluationInterrupted",
    "SIGNAL_AT_SHARD_ENV",
]

SIGNAL_AT_SHARD_ENV = "PRIMEBENCH_SIGNAL_AT_SHARD"


def _message(step: int, progress: Path, signum: int, saved: int) -> str:
    return (
        f"evaluation stopped on signal {signal.Signals(signum).name} after {saved} shard(s) "
        f"saved by this process; progress kept in {progress}"
    )


class EvaluationPreempted(Preempted):
    """The warning signal during evaluation: the job requeues and continues the shards."""

    def __init__(self, step: int, progress: Path, signum: int, saved: int = 0):
        super().__init__(step, progress, signum)
        self.args = (_message(step, progress, signum, saved),)


class EvaluationInterrupted(Interrupted):
    """SIGINT / SIGTERM during evaluation: the next start continues the shards."""

    def __init__(self, step: int, progress: Path, signum: int, saved: int = 0):
        super().__init__(step, progress, signum)
        self.args = (_message(step, progress, signum, saved),)


class EvaluationSignals:
    """Records the warning signal, SIGINT and SIGTERM within the block (handlers are
    restored on exit; a no-op outside the main thread). ``step``: the trained step the
    evaluation scores (what a requeued run's tag reports); ``progress``: where the
    shards are kept (named in the stop's message)."""

    def __init__(self, step: int, progress: Path):
        self.step, self.progress = step, progress
        self.warned = False
        self.stop_signum: int | None = None
        self.saved = 0
        self._previous: dict[int, Any] = {}
        at, _, name = os.environ.get(SIGNAL_AT_SHARD_ENV, "").partition(":")
        self._signal_at = at or None
        self._test_signal = signal.Signals[name] if name else WARNING_SIGNAL

    @property
    def received(self) -> bool:
        return self.warned or self.stop_signum is not None

    def _record(self, signum: int, frame: Any) -> None:
        if signum == WARNING_SIGNAL:
            self.warned = True
            return
        if signum == signal.SIGINT and self.stop_signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C
        self.stop_signum = signum

    def __enter__(self) -> EvaluationSignals:
        for signum in (WARNING_SIGNAL, *STOP_SIGNALS):
            try:
                self._previous[signum] = signal.signal(signum, self._record)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def shard_saved(self, stage: str, index: int) -> None:
        """Count a saved shard (and fire the testing hook); the caller then checks for a
        stop (:meth:`raise_if_stopped`), after telling the other ranks of its own."""
        self.saved += 1
        if self._signal_at == f"{stage}/{index}":
            os.kill(os.getpid(), self._test_signal)

    def raise_if_stopped(self, elsewhere: str | None = None) -> None:
        """Raise the stop this process recorded, or the one another rank reported
        (``elsewhere``: "warning" or "stop:<signal number>")."""
        if self.stop_signum is not None:
            raise EvaluationInterrupted(self.step, self.progress, self.stop_signum, self.saved)
        if self.warned:
            raise EvaluationPreempted(self.step, self.progress, WARNING_SIGNAL, self.saved)
        if elsewhere is None:
            return
        if elsewhere.startswith("stop:"):
            signum = int(elsewhere.split(":", 1)[1])
            raise EvaluationInterrupted(self.step, self.progress, signum, self.saved)
        raise EvaluationPreempted(self.step, self.progress, WARNING_SIGNAL, self.saved)

    def report(self) -> str | None:
        """What this process recorded, for the other ranks (None: nothing)."""
        if self.stop_signum is not None:
            return f"stop:{self.stop_signum}"
        return "warning" if self.warned else None
