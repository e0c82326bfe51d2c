"""Training through Lightning: checkpoints under runs/<run id>/, EMA, automatic resume.

Every training batch and every noise draw is a function of (seed, global step): the data
come from a CPU generator and the masking noise from a generator on the model's device,
both seeded from the step, and the global RNG (dropout) is reseeded per step. A run
resumed from its checkpoint therefore continues exactly where it stopped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import MLFlowLogger
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from .config import RunConfig, TrainConfig
from .ema import EMA

__all__ = ["DiffusionModule", "fit", "step_seed", "pick_precision", "SimulatedInterruption"]

INTERRUPT_ENV = "PRIMEBENCH_INTERRUPT_AFTER_STEP"


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, step, stream), decorrelated by a large odd multiplier."""
    return (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + stream) % (2**63 - 1)


def pick_precision(setting: str) -> str:
    """``auto``: bf16 mixed precision on a GPU that supports it, fp32 otherwise."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class DiffusionModule(L.LightningModule):
    """Wraps a model with ``training_loss(x0, generator)`` and a task with
    ``train_batch(batch_size, generator) -> x0``."""

    def __init__(self, model: nn.Module, task: Any, train: TrainConfig, seed: int):
        super().__init__()
        self.model = model
        self.task = task
        self.train_cfg = train
        self.seed = seed
        self.ema = EMA(model, train.ema) if train.ema is not None else None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        # One stream per (optimizer step, micro-batch of gradient accumulation, rank):
        # resumed runs replay exactly, and data-parallel ranks see different batches.
        micro = batch_idx % self.train_cfg.accumulate
        stream = 3 * (micro + self.train_cfg.accumulate * self.global_rank)
        step = self.global_step
        data_gen = torch.Generator().manual_seed(step_seed(self.seed, step, stream))
        noise_gen = torch.Generator(device=self.device).manual_seed(
            step_seed(self.seed, step, stream + 1)
        )
        torch.manual_seed(step_seed(self.seed, step, stream + 2))
        x0 = self.task.train_batch(self.train_cfg.batch_size, data_gen).to(self.device)
        loss, parts = self.model.training_loss(x0, noise_gen)
        self.log("train/loss", loss, prog_bar=True)
        for name, value in (parts._asdict() if hasattr(parts, "_asdict") else parts).items():
            self.log(f"train/{name}", value.mean())
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here rather than in on_train_batch_end: checkpoint callbacks run before the
        # module's batch-end hook, and a checkpoint must hold this step's average.
        if self.ema is not None:
            self.ema.update(self.model)

    def configure_optimizers(self) -> Any:
        cfg = self.train_cfg
        optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        warmup = max(1, cfg.warmup_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class _Steps(IterableDataset):
    """Endless placeholder batches: the module builds each batch from the global step."""

    def __iter__(self):
        while True:
            yield 0


class _OpenRunLogger(MLFlowLogger):
    """Logs into an existing MLflow run and leaves it open: evaluation follows training."""

    def finalize(self, status: str = "success") -> None:
        pass


class SimulatedInterruption(RuntimeError):
    """Raised by the testing hook ``PRIMEBENCH_INTERRUPT_AFTER_STEP``."""


class _InterruptAfter(Callback):
    """Abort once a checkpoint at or after ``step`` exists (simulates a preempted job)."""

    def __init__(self, step: int, last: Path):
        self.step, self.last = step, last

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step and self.last.exists():
            raise SimulatedInterruption(f"interrupted at step {trainer.global_step}")


def fit(
    model: nn.Module,
    task: Any,
    config: RunConfig,
    run_dir: Path,
    tracking_uri: str,
    mlflow_run_id: str,
) -> DiffusionModule:
    """Train ``model`` for ``config.train.steps``, resuming from runs/<id>/checkpoints/last.ckpt."""
    cfg = config.train
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    module = DiffusionModule(model, task, cfg, config.seed)
    callbacks: list[Callback] = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="step{step:08d}",
            auto_insert_metric_name=False,
            every_n_train_steps=cfg.checkpoint_every,
            save_top_k=-1 if config.scale == "paper" else 1,
            save_last=True,
        ),
        TQDMProgressBar(refresh_rate=max(1, cfg.log_every // 5)),
    ]
    if os.environ.get(INTERRUPT_ENV):
        callbacks.append(_InterruptAfter(int(os.environ[INTERRUPT_ENV]), last))
    trainer = L.Trainer(
        max_steps=cfg.steps,
        accelerator="auto",
        # All visible GPUs (data parallel; train.batch_size is per device), else one CPU.
        devices="auto" if torch.cuda.is_available() else 1,
        accumulate_grad_batches=cfg.accumulate,
        precision=pick_precision(cfg.precision),
        logger=_OpenRunLogger(tracking_uri=tracking_uri, run_id=mlflow_run_id),
        callbacks=callbacks,
        gradient_clip_val=cfg.grad_clip,
        log_every_n_steps=cfg.log_every,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=run_dir,
    )
    loader = DataLoader(_Steps(), batch_size=None)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(last) if last.exists() else None)
    trainer.save_checkpoint(last)
    return module
