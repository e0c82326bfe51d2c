"""Save on the scheduler's warning signal, so that a timed-out or preempted job loses
nothing and its requeued successor resumes where it stopped.

Slurm sends ``SIGUSR2`` to every rank ``signal_delay_s`` seconds before the time limit
(submitit asks for it with ``--signal``), and preemption sends the same signal. The
handler only records it: the training loop reacts at the next optimizer-step boundary,
where the ranks agree (a max all-reduce, since each rank gets the signal at its own
moment), all save one checkpoint together, training stops, and :class:`Preempted` is
raised. The job
callable then lets submitit requeue the job (see :mod:`benchmarks.launch`).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["Preempted", "SaveOnSignal", "WARNING_SIGNAL", "SIGNAL_AT_STEP_ENV"]

WARNING_SIGNAL = signal.SIGUSR2
# Testing hook: the process sends itself the warning signal at this optimizer step.
SIGNAL_AT_STEP_ENV = "PRIMEBENCH_SIGNAL_AT_STEP"


class Preempted(Exception):  # noqa: N818 - a state, not a failure
    """Training stopped on the warning signal after saving ``checkpoint`` at ``step``."""

    def __init__(self, step: int, checkpoint: Path, signum: int):
        super().__init__(
            f"stopped on signal {signal.Signals(signum).name} at step {step}; "
            f"checkpoint {checkpoint}"
        )
        self.step, self.checkpoint, self.signum = step, checkpoint, signum


class SaveOnSignal(Callback):
    """Records the warning signal; at the next step boundary saves ``last`` and stops."""

    def __init__(self, last: Path, signum: int = WARNING_SIGNAL):
        self.last, self.signum = last, signum
        self.received = False
        self._previous: Any = None
        self._seen_step = -1
        self.stopped_at: int | None = None
        at = os.environ.get(SIGNAL_AT_STEP_ENV)
        self._signal_at = int(at) if at else None

    def _record(self, signum: int, frame: Any) -> None:
        self.received = True

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._previous = signal.signal(self.signum, self._record)
        self._seen_step = trainer.global_step

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, err: BaseException):
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any):
        step = trainer.global_step
        if step == self._seen_step:  # inside gradient accumulation: no optimizer step yet
            return
        self._seen_step = step
        if self._signal_at is not None and step == self._signal_at and not self.received:
            os.kill(os.getpid(), self.signum)
        stop = torch.tensor(float(self.received), device=module.device)
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce(stop, reduce_op="max")
        if stop.item() > 0 and step < (trainer.max_steps or 0):
            trainer.save_checkpoint(self.last)
            # Stop after this batch rather than raise here: the step's metrics are logged
            # after the batch-end hooks, and the resumed run starts at the next step.
            self.stopped_at = step
            trainer.should_stop = True

    def raise_if_stopped(self) -> None:
        """After ``fit`` returns: raise :class:`Preempted` if it stopped on the signal."""
        if self.stopped_at is not None:
            raise Preempted(self.stopped_at, self.last, self.signum)
