"""BD3-LM's data-driven clipped schedule: during training, every ``every`` optimizer steps
the block-diffusion model's training window [beta, omega] is set to the candidate of
least summed per-batch variance of the per-block mean loss on fixed held-out rows
(:mod:`baselines.clipped_windows`), scored with the EMA weights in eval mode as bd3lms
scores at each validation (diffusion.py:369-402: EMA weights, then
``_clipped_schedule_search``).

Each rank scores its slice of every batch and the ranks add their moments, so all of
them choose the same window, the one a single process would. The window is a buffer of
the model: checkpoints keep it, a resumed run continues with it, and the evaluation card
records it (evaluation itself always uses [eps, 1]).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from baselines import DEFAULT_WINDOWS, BlockDiffusion
from baselines.clipped_windows import variances_from_moments, window_moments

from ..core import ConfigError
from ..data.loader import TrainRows
from ..streams import WINDOW_STREAM, step_seed

__all__ = ["WindowSearch"]


class WindowSearch(Callback):
    """Re-chooses the training window of a :class:`BlockDiffusion` model.

    Args:
        rows: held-out rows (the task's validation rows); the first ``count`` are used.
        every: optimizer steps between searches.
        seed: the random stream of the search (one per step, the same on every rank).
        batch_rows: rows of one variance batch (0: all ``count`` rows in one).
        strata: the block times of each batch are stratified over each run of this many
            rows x blocks (None: over the whole batch); it must divide every batch's rows.
    """

    def __init__(
        self,
        rows: TrainRows,
        every: int,
        count: int,
        seed: int,
        batch_rows: int = 0,
        strata: int | None = None,
    ):
        self.every, self.seed, self.batch_rows, self.strata = every, seed, batch_rows, strata
        n = min(count, len(rows))
        if n < 2:
            raise ValueError(f"the window search needs >= 2 held-out rows, got {len(rows)}")
        sizes = {min(batch_rows or n, n), n % (batch_rows or n) or n}
        if strata is not None and any(size % strata for size in sizes):
            raise ConfigError(
                f"model.window_search_strata: expected a divisor of the rows of every search "
                f"batch ({sorted(sizes)} of {n} held-out rows), got {strata}"
            )
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
        ema = pl_module.ema
        with ema.applied_to(model) if ema is not None else nullcontext():
            with trainer.precision_plugin.forward_context():
                moments = window_moments(
                    model,
                    self.rows,
                    DEFAULT_WINDOWS,
                    step_seed(self.seed, step, WINDOW_STREAM),
                    self.batch_rows,
                    rank=trainer.global_rank,
                    world=trainer.world_size,
                    chunk_rows=pl_module.sampler.micro_batch,
                    device=pl_module.device,
                    strata=self.strata,
                )
        if trainer.world_size > 1:
            moments = trainer.strategy.reduce(moments, reduce_op="sum")
        scores = variances_from_moments(moments).sum(-1)
        model.set_window(DEFAULT_WINDOWS[int(scores.argmin())])
        beta, omega = model.training_window
        pl_module.log("train/window_beta", beta)
        pl_module.log("train/window_omega", omega)
