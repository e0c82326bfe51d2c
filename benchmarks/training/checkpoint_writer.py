"""Writing a run's checkpoints so that a kill at any instant leaves only whole files.

* :class:`AtomicCheckpointIO`: each checkpoint is written to a temporary file in its own
  folder (created exclusively, never through a symlink), flushed to the disk, renamed
  over its name and the folder flushed. A rename inside one folder is atomic: a reader,
  or a run resumed after a kill, finds either the previous whole file or the new whole
  file, never a truncated one. (Lightning's own writer stages the file in the system
  temp directory, and a move across filesystems is a copy that a kill cuts short.)
  A failed write (a full disk) removes its temporary file and leaves the previous
  checkpoint as it was.
* :class:`PeriodicCheckpoints`: which checkpoints are written, and when: after the
  step's metric points are in the tracking store, so that a resumed run never starts
  past a step whose points were lost.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..safe_files import atomic_write, ensure_directory
from ..tracking.run_logger import flush_step_metrics
from .checkpoints import CheckpointError

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointWriteError",
    "PeriodicCheckpoints",
    "TEMP_SUFFIX",
    "remove_temporaries",
    "write_atomically",
]

log = logging.getLogger("primebench")

TEMP_SUFFIX = ".tmp"  # as benchmarks.safe_files.atomic_write names its own


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (the previous one is unchanged)."""


def write_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save(checkpoint)`` to ``path`` through
    :func:`benchmarks.safe_files.atomic_write` (a temporary file in the same folder,
    flushed, renamed over ``path``, which replaces a symlink planted there rather than
    writing through it). Raises :class:`CheckpointWriteError` naming the file; the
    temporary file is removed and ``path`` untouched."""
    ensure_directory(path.parent, "checkpoint folder")
    try:
        with atomic_write(path, "checkpoint") as handle:
            torch.save(checkpoint, handle)
    except OSError as err:
        full = " (no space left on the device)" if err.errno == errno.ENOSPC else ""
        raise CheckpointWriteError(
            f"checkpoint {path} could not be written{full}: {err.strerror or err}; the "
            f"previous {path.name}, if any, is unchanged and the run resumes from it"
        ) from err


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files (``.<name>.<random>.tmp``) a killed writer left in
    ``folder``, a run's checkpoints or artifacts (called by the lease's holder, so no
    writer is active); returns them."""
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file() or p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d partial file(s) of a killed writer in %s", len(stale), folder)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with :func:`write_atomically` as its writer, and a reader
    that never unpickles code."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        write_atomically(checkpoint, Path(path))

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Resume reads tensors and plain data only, whatever torch's default."""
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class PeriodicCheckpoints(ModelCheckpoint):
    """``step<n>.ckpt`` and ``last.ckpt`` every ``checkpoint_every`` steps, nothing else.

    Before a step's checkpoint is written, the step's metric points are sent to the
    tracking store (:func:`benchmarks.tracking.run_logger.flush_step_metrics`): a run killed
    between the two then resumes at a step whose points are in the store, where saving
    first would lose them for good.

    The end of training writes ``last.ckpt`` itself
    (:func:`benchmarks.training.lightning_module.fit`, or
    :class:`benchmarks.runtime.preemption.SaveOnSignal` on a signal), so Lightning's own save
    at the end is left out: one save, one file, never a ``last-v1.ckpt`` twin.

    The steps of ``keep_steps`` are saved too, off the grid as well, and never removed
    when only the newest periodic checkpoint is kept: a fine-tuned run starts from one.
    """

    def __init__(self, *args: Any, keep_steps: Sequence[int] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kept_names = {step: f"step{step:08d}.ckpt" for step in keep_steps}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        step = trainer.global_step
        every = self._every_n_train_steps
        due = (every > 0 and step % every == 0) or step in self.kept_names
        if due and self._last_global_step_saved != step:
            flush_step_metrics(trainer)
        super().on_train_batch_end(trainer, pl_module, *args)
        # Micro-batches after an optimizer step see the same global step: saved once.
        if step in self.kept_names and self._last_global_step_saved != step:
            self._save_checkpoint(trainer, str(Path(self.dirpath or ".") / self.kept_names[step]))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def _should_remove_checkpoint(self, trainer: L.Trainer, previous: str, current: str) -> bool:
        if Path(previous).name in self.kept_names.values():
            return False
        return super()._should_remove_checkpoint(trainer, previous, current)
