"""Training through Lightning: data-parallel ranks, checkpoints under runs/<run id>/, EMA,
save-and-stop on the scheduler's warning, automatic resume.

Optimizer step s is a function of (run seed, s) alone, however many ranks share it:

* data: the step's global batch is drawn from a generator seeded by the step (or read
  from per-epoch permutations) and split over ranks and micro-batches
  (:mod:`benchmarks.data.loader`);
* masking noise: drawn for the whole global batch from a generator seeded by the step,
  each micro-batch keeping its rows (:class:`prime.BatchShard`), the times stratified
  over groups of global rows (``train.time_strata``);
* the network's own randomness (dropout, mixture labels): the global RNG, reseeded per
  (step, rank, micro-batch); this one stream depends on the split.

So 1 process and N ranks take the same steps (to float tolerance, for networks without
dropout), and a run resumed from its checkpoint, on any number of devices, continues
exactly where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from prime import BatchShard

from ..config.run_config import RunConfig
from ..config.train_config import TrainConfig
from ..data.loader import StepSampler, TrainRows, training_loader
from ..runtime.distributed import JobEnvironment, World
from ..runtime.preemption import SaveOnSignal
from ..streams import DATA_STREAM, EPOCH_STREAM, NOISE_STREAM, network_stream, step_seed
from ..tracking.run_logger import OpenRunLogger
from .checkpoint_writer import AtomicCheckpointIO, PeriodicCheckpoints, remove_temporaries
from .checkpoints import RUN_ID_KEY, check_run_id, resume_checkpoint
from .ema import EMA
from .finite_loss import PATIENCE_WITH_SCALER, FiniteLossGuard, NonFiniteLoss
from .hardware import Hardware
from .loss_scale import DynamicLossScale, LossScaledModule
from .throughput import Throughput

__all__ = ["TrainingModule", "fit"]

log = logging.getLogger("primebench")


class TrainingModule(LossScaledModule):
    """Wraps a model with ``training_loss(x0, generator, shard)``; batches come from a
    :class:`StepSampler`, whose position this module checkpoints. ``ema_start``: the
    weights the EMA starts from, by parameter name (None: the model's current ones)."""

    def __init__(
        self,
        model: nn.Module,
        train: TrainConfig,
        seed: int,
        sampler: StepSampler,
        run_id: str,
        ema_start: Mapping[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        self.model = model
        self.run_id = run_id
        self.train_cfg = train
        self.seed, self.sampler = seed, sampler
        self.ema = None
        self.loss_scale = DynamicLossScale() if train.loss_scale == "dynamic" else None
        if train.ema is not None:
            self.ema = EMA(model, train.ema, offset=train.ema_offset, start=ema_start)
        self.finite = FiniteLossGuard(PATIENCE_WITH_SCALER if self.loss_scale else 1)
        self._step_sums: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        step = batch["step"]
        if step != self.global_step:
            raise RuntimeError(
                f"the data stream is at step {step} but training at {self.global_step}"
            )
        # Rows travel in their narrow stored dtype; widened on the device.
        x0 = batch["x0"].to(self.device, non_blocking=True).long()
        strata = self.train_cfg.time_strata
        shard = BatchShard(batch["row_start"], x0.shape[0], batch["global_size"], strata)
        noise_gen = torch.Generator(device=self.device).manual_seed(
            step_seed(self.seed, step, NOISE_STREAM)
        )
        stream = network_stream(batch["micro"], self.sampler.accumulation, self.global_rank)
        torch.manual_seed(step_seed(self.seed, step, stream))
        loss, parts = self.model.training_loss(x0, noise_gen, shard=shard)
        parts = parts._asdict() if hasattr(parts, "_asdict") else parts
        self._step_sums.append(
            torch.stack([loss.detach(), *(v.detach().mean() for v in parts.values())])
        )
        if batch["micro"] == self.sampler.accumulation - 1:
            # One value per optimizer step: the mean over the whole global batch (all
            # micro-batches, all ranks), as one process would log it.
            values = torch.stack(self._step_sums).mean(0)
            self._step_sums = []
            sync = self.sampler.world_size > 1
            self.log("train/loss", values[0], prog_bar=True, sync_dist=sync)
            for i, name in enumerate(parts, start=1):
                self.log(f"train/{name}", values[i], sync_dist=sync)
            self._check_finite(step, values[0])
        return loss

    def _check_finite(self, step: int, loss: torch.Tensor) -> None:
        """Raise :class:`NonFiniteLoss` (all ranks at once) when the guard says stop,
        after saving the state the step started from beside the periodic checkpoints."""
        bad = torch.tensor(0.0 if torch.isfinite(loss) else 1.0, device=self.device)
        if self.sampler.world_size > 1:  # one rank's NaN stops every rank
            bad = self.trainer.strategy.reduce(bad, reduce_op="max")
        value = float(loss) if bad.item() == 0 or not torch.isfinite(loss) else float("nan")
        if self.finite.check(step, value):
            folder = Path(self.trainer.default_root_dir) / "checkpoints"
            self.trainer.save_checkpoint(folder / f"nonfinite-step{step:08d}.ckpt")
            raise NonFiniteLoss(step, value, self.finite.last_finite)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here rather than in on_train_batch_end: checkpoint callbacks run before the
        # module's batch-end hook, and a checkpoint must hold this step's average.
        if self.ema is not None:
            self.ema.update(self.model)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Saved after an optimizer step: the next batch to train on is step global_step.
        self.sampler.start_step = self.trainer.global_step
        checkpoint["primebench_sampler"] = self.sampler.state_dict()
        checkpoint["primebench_finite"] = self.finite.state_dict()
        checkpoint[RUN_ID_KEY] = self.run_id

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Called before any weight is restored from it.
        check_run_id(checkpoint, self.trainer.ckpt_path, self.run_id)
        self.sampler.load_state_dict(checkpoint["primebench_sampler"])
        if "primebench_finite" in checkpoint:
            self.finite.load_state_dict(checkpoint["primebench_finite"])

    def configure_optimizers(self) -> Any:
        cfg = self.train_cfg
        params = list(self.model.parameters())
        if cfg.weight_decay_on == "matrices":
            groups = [
                {"params": [p for p in params if p.dim() >= 2]},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
            ]
        else:
            groups = [{"params": params}]
        optimizer = torch.optim.AdamW(
            groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cfg.lr_factor(s))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _strategy(world: World, hardware: Hardware) -> Any:
    if world.size == 1:
        return "auto"
    return DDPStrategy(
        process_group_backend=hardware.backend,
        # Every rank keeps the same EMA buffers; broadcasting them each step costs a
        # model-sized transfer for nothing.
        broadcast_buffers=False,
    )


def fit(
    model: nn.Module,
    rows: TrainRows,
    config: RunConfig,
    run_dir: Path,
    world: World,
    hardware: Hardware,
    logger: tuple[str, str] | None,
    extra_callbacks: Sequence[Callback] = (),
    ema_start: Mapping[str, torch.Tensor] | None = None,
) -> TrainingModule:
    """Train ``model`` for ``config.train.steps`` on ``world``'s ranks, resuming from
    runs/<id>/checkpoints/last.ckpt; ``logger`` = (tracking URI, MLflow run id) on the
    main rank; ``ema_start``: see :class:`TrainingModule`. Raises
    :class:`benchmarks.runtime.preemption.Preempted` on the warning signal."""
    cfg = config.train
    micro, accumulation = cfg.split(world.size)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if world.is_main and ckpt_dir.is_dir():
        remove_temporaries(ckpt_dir)  # under the lease: no writer is active
    resume, fallback = resume_checkpoint(ckpt_dir)
    if fallback and world.is_main:
        log.warning("%s", fallback)
    keep_all = (
        cfg.keep_checkpoints if cfg.keep_checkpoints is not None else (config.scale == "paper")
    )
    sampler = StepSampler(
        len(rows),
        cfg.global_batch_size,
        micro,
        accumulation,
        world.rank,
        world.size,
        lambda step: step_seed(config.seed, step, DATA_STREAM),
        rows.weights(),
        order=getattr(rows, "order", "replacement"),
        seed_of_epoch=lambda epoch: step_seed(config.seed, epoch, EPOCH_STREAM),
    )
    module = TrainingModule(model, cfg, config.seed, sampler, config.run_id, ema_start)
    on_signal = SaveOnSignal(last)
    callbacks: list[Callback] = [
        PeriodicCheckpoints(
            dirpath=ckpt_dir,
            filename="step{step:08d}",
            auto_insert_metric_name=False,
            every_n_train_steps=cfg.checkpoint_every,
            save_top_k=-1 if keep_all else 1,
            save_last=True,
            enable_version_counter=False,
            keep_steps=cfg.keep_checkpoint_steps,
        ),
        on_signal,
        Throughput(cfg, world.size, hardware, model),
        *extra_callbacks,
    ]
    if world.is_main:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.log_every // 5)))
    trainer = L.Trainer(
        max_steps=cfg.steps,
        accelerator=hardware.accelerator,
        devices=world.local_size,
        num_nodes=world.nodes,
        strategy=_strategy(world, hardware),
        # Our own environment also for one process: under Slurm, Lightning's would install
        # its own requeue and SIGTERM handlers beside submitit's.
        plugins=[JobEnvironment(world), AtomicCheckpointIO()],
        use_distributed_sampler=False,
        accumulate_grad_batches=accumulation,
        precision=hardware.precision,
        logger=OpenRunLogger(*logger, cfg.log_every, cfg.steps - 1) if logger else False,
        callbacks=callbacks,
        gradient_clip_val=cfg.grad_clip,
        log_every_n_steps=cfg.log_every,
        enable_model_summary=False,
        enable_progress_bar=world.is_main,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=run_dir,
    )
    loader = training_loader(
        rows,
        sampler,
        hardware.loader_workers(cfg.loader_workers),
        cfg.prefetch_factor,
        hardware.pin_memory,
    )
    # The checkpoint's run id is checked as it is loaded.
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume) if resume else None)
    on_signal.raise_if_stopped()
    trainer.save_checkpoint(last)
    return module
