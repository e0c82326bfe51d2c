"""BD3-LM's data-driven clipped schedule: during training, every ``every`` optimizer steps
the block-diffusion model's training window [beta, omega] is set to the candidate of
least per-block loss variance on fixed held-out rows
(:meth:`baselines.BlockDiffusion.search_window`).

Every rank runs the same search on the same rows with the same random stream and the
same weights, so all ranks choose the same window without communicating. The window is
a buffer of the model: checkpoints keep it, a resumed run continues with it, and the
evaluation card records it (evaluation itself always uses [eps, 1]).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from baselines import BlockDiffusion

from .data.loader import TrainRows
from .streams import WINDOW_STREAM, step_seed

__all__ = ["WindowSearch"]


class WindowSearch(Callback):
    """Re-chooses the training window of a :class:`BlockDiffusion` model.

    Args:
        rows: held-out rows (the task's validation rows); the first ``count`` are used.
        every: optimizer steps between searches.
        seed: the random stream of the search (one per step, the same on every rank).
    """

    def __init__(self, rows: TrainRows, every: int, count: int, seed: int):
        self.every, self.seed = every, seed
        n = min(count, len(rows))
        if n < 2:
            raise ValueError(f"the window search needs >= 2 held-out rows, got {len(rows)}")
        index = np.arange(n)
        self.rows = rows.get(index, np.zeros(n, dtype=np.int64))

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, Any],
        batch_idx: int,
    ) -> None:
        if batch["micro"] != pl_module.sampler.accumulation - 1:
            return  # the optimizer steps after the last micro-batch
        step = trainer.global_step
        if step % self.every:
            return
        model = pl_module.model
        if not isinstance(model, BlockDiffusion):
            raise TypeError(f"the window search needs a BlockDiffusion model, got {type(model)}")
        x0 = self.rows.to(pl_module.device).long()
        beta, omega = model.search_window(x0, seed=step_seed(self.seed, step, WINDOW_STREAM))
        pl_module.log("train/window_beta", beta)
        pl_module.log("train/window_omega", omega)
