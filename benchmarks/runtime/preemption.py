"""Save on the scheduler's warning signal, so that a timed-out or preempted job loses
nothing and its requeued successor resumes where it stopped.

Slurm sends ``SIGUSR2`` to every rank ``signal_delay_s`` seconds before the time limit
(submitit asks for it with ``--signal``), and preemption sends the same signal. The
handler only records it: the training loop reacts at the next optimizer-step boundary,
where the ranks agree (a max all-reduce, since each rank gets the signal at its own
moment), all save one checkpoint together, training stops, and :class:`Preempted` is
raised. The job
callable then lets submitit requeue the job (see :mod:`benchmarks.launch.launcher`).

Ctrl-C (``SIGINT``) and ``SIGTERM`` (``scancel``, ``kill``) take the same path during
training but raise :class:`Interrupted`: the checkpoint is saved, the MLflow run is marked
interrupted, nothing is requeued, and the next start resumes. A second Ctrl-C stops at
once (as ``KeyboardInterrupt``). Outside training, :func:`terminate_raises` turns
``SIGTERM`` into :class:`Terminated`, so that an evaluation stopped by it is recorded too.

A sweep of local jobs (:func:`benchmarks.launch.launcher.launch_local`) is stopped by Ctrl-C as a
whole: a terminal sends SIGINT to its foreground process group, so the sweep's process
and every job's process get it at once. Each job saves and stops on its own; the sweep
(:class:`StopRequest`) starts no further job and waits for the running ones. submitit's
local controller, the process between the sweep and a job, would answer SIGINT by
killing its job one second later, whatever the job was saving: it is started with
SIGINT ignored (:func:`sigint_ignored`), and the job's own process takes the signal back
(:func:`sigint_restored`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..tracking.run_logger import flush_step_metrics

__all__ = [
    "StopRequest",
    "sigint_ignored",
    "sigint_restored",
    "Stopped",
    "Preempted",
    "Interrupted",
    "Terminated",
    "SaveOnSignal",
    "terminate_raises",
    "WARNING_SIGNAL",
    "STOP_SIGNALS",
    "SIGNAL_AT_STEP_ENV",
]

WARNING_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Testing hook: the process sends itself the warning signal at this optimizer step
# ("STEP"), or another signal ("STEP:SIGINT").
SIGNAL_AT_STEP_ENV = "PRIMEBENCH_SIGNAL_AT_STEP"


class Stopped(Exception):  # noqa: N818 - a state, not a failure
    """Training stopped on a signal after saving ``checkpoint`` at ``step``."""

    def __init__(self, step: int, checkpoint: Path, signum: int):
        super().__init__(
            f"stopped on signal {signal.Signals(signum).name} at step {step}; "
            f"checkpoint {checkpoint}"
        )
        self.step, self.checkpoint, self.signum = step, checkpoint, signum


class Preempted(Stopped):
    """Stopped on the scheduler's warning signal: the job requeues itself."""


class Interrupted(Stopped):
    """Stopped on SIGINT or SIGTERM: the checkpoint is resumed by the next start."""


class Terminated(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """SIGTERM outside training (see :func:`terminate_raises`)."""


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (its default action would end
    the process with no chance to record why). A no-op outside the main thread."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"signal {signal.Signals(signum).name}")


class StopRequest:
    """Within the block, the first SIGINT is recorded (:attr:`requested`) rather than
    raised; a second raises ``KeyboardInterrupt`` at once. A no-op outside the main
    thread, where nothing would see the flag in time."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _record(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        try:
            self._previous = signal.signal(signal.SIGINT, self._record)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored within the block: processes started in it inherit the ignored
    disposition (Python keeps it, rather than raising ``KeyboardInterrupt``). A no-op
    outside the main thread."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_restored() -> None:
    """In a job's own process started with SIGINT ignored: Ctrl-C raises
    ``KeyboardInterrupt`` again (and training's :class:`SaveOnSignal` takes it over)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class SaveOnSignal(Callback):
    """Records the warning signal, SIGINT and SIGTERM; at the next step boundary saves
    ``last`` and stops (the ranks agree on the first step any of them saw a signal)."""

    _WARNING, _STOP = 1, 2  # what the ranks agree on: a stop outranks a requeue

    def __init__(self, last: Path, signum: int = WARNING_SIGNAL):
        self.last, self.signum = last, signum
        self.kind = 0
        self._stop_signum = signal.SIGINT
        self._previous: dict[int, Any] = {}
        self._seen_step = -1
        self.stopped_at: int | None = None
        at, _, name = os.environ.get(SIGNAL_AT_STEP_ENV, "").partition(":")
        self._signal_at = int(at) if at else None
        self._test_signal = signal.Signals[name] if name else signum

    @property
    def received(self) -> bool:
        return self.kind > 0

    def _record(self, signum: int, frame: Any) -> None:
        if signum == self.signum:
            self.kind = max(self.kind, self._WARNING)
            return
        self.kind, self._stop_signum = self._STOP, signum
        if signum == signal.SIGINT:
            # A second Ctrl-C is not to be ignored: it interrupts at once.
            signal.signal(
                signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler)
            )

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # After Lightning's own SIGTERM handler is installed (it would end the fit without
        # a checkpoint); restored, so that Lightning's teardown restores the rest.
        for signum in (self.signum, *STOP_SIGNALS):
            try:
                self._previous[signum] = signal.signal(signum, self._record)
            except ValueError:  # not the main thread
                pass
        self._seen_step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, err: BaseException):
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any):
        step = trainer.global_step
        if step == self._seen_step:  # inside gradient accumulation: no optimizer step yet
            return
        self._seen_step = step
        if self._signal_at is not None and step == self._signal_at and not self.received:
            os.kill(os.getpid(), self._test_signal)
        kind = torch.tensor(float(self.kind), device=module.device)
        if trainer.world_size > 1:
            kind = trainer.strategy.reduce(kind, reduce_op="max")
        if kind.item() > 0 and step < (trainer.max_steps or 0):
            self.kind = int(kind.item())
            flush_step_metrics(trainer)  # before the save, as the periodic checkpoints
            trainer.save_checkpoint(self.last)
            # Stop after this batch rather than raise here: the step's metrics are logged
            # after the batch-end hooks, and the resumed run starts at the next step.
            self.stopped_at = step
            trainer.should_stop = True

    def raise_if_stopped(self) -> None:
        """After ``fit`` returns: raise :class:`Preempted` or :class:`Interrupted` if it
        stopped on a signal."""
        if self.stopped_at is None:
            return
        if self.kind == self._STOP:
            raise Interrupted(self.stopped_at, self.last, self._stop_signum)
        raise Preempted(self.stopped_at, self.last, self.signum)
