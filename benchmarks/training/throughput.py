"""Throughput of training, logged with the run so that an idle GPU shows at once.

Every ``log_every`` optimizer steps (from the second report on: the first interval
holds start-up), over the steps since the last report:

    perf/samples_per_s_per_device = G k / (W dt)
    perf/tokens_per_s_per_device  = G L k / (W dt)
    perf/model_tflops_per_device  = F G L k / (W dt) / 1e12
    perf/mfu                      = model_tflops_per_device / peak (known GPUs only)

for k steps of global batch G over W ranks in dt seconds, L tokens per row, and F the
network's training FLOPs per token (``flops_per_token``, e.g. the DiT's), when it has one.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import nn

from ..config.train_config import TrainConfig
from .hardware import Hardware

__all__ = ["Throughput", "flops_per_token_of"]


def flops_per_token_of(model: nn.Module) -> Any:
    """The ``flops_per_token(seq_len)`` of the first submodule that has one, else None."""
    return next((m.flops_per_token for m in model.modules() if hasattr(m, "flops_per_token")), None)


class Throughput(Callback):
    def __init__(self, cfg: TrainConfig, world_size: int, hardware: Hardware, model: nn.Module):
        self.cfg, self.world_size, self.hardware = cfg, world_size, hardware
        self.flops = flops_per_token_of(model)
        self._mark: tuple[int, float] | None = None
        self._seq_len: int | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._seq_len = int(batch["x0"].shape[1])
        step, now = trainer.global_step, time.perf_counter()
        # Report on the logging grid (after steps every-1, 2 every-1, ...), over the
        # steps since the previous report; the first grid point only starts the clock,
        # so start-up is not counted.
        if step % self.cfg.log_every or (self._mark is not None and step == self._mark[0]):
            return
        if self._mark is None:
            self._mark = (step, now)
            return
        done, dt = step - self._mark[0], now - self._mark[1]
        self._mark = (step, now)
        samples = self.cfg.global_batch_size * done / (self.world_size * dt)
        tokens = samples * self._seq_len
        metrics = {
            "perf/samples_per_s_per_device": samples,
            "perf/tokens_per_s_per_device": tokens,
            "perf/step_time_s": dt / done,
        }
        if self.flops is not None:
            tflops = self.flops(self._seq_len) * tokens / 1e12
            metrics["perf/model_tflops_per_device"] = tflops
            if self.hardware.peak_tflops:
                metrics["perf/mfu"] = tflops / self.hardware.peak_tflops
        if trainer.is_global_zero and trainer.logger is not None:
            trainer.logger.log_metrics(metrics, step=step - 1)
