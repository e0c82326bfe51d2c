"""Optimisation settings of a run, and how its global batch splits over ranks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..core import ConfigError, positive
from .precision import FASTEST, fastest_training_precision
from .validation import within

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings: AdamW, a linear warm-up, then a constant or cosine-decayed
    learning rate (:meth:`lr_factor`), and a weight EMA (:class:`benchmarks.training.ema.EMA`).

    With W ranks, each rank takes ``global_batch_size / W`` rows per optimizer step, as
    ``accumulation`` micro-batches of ``micro_batch_size`` rows.

    The fields of :attr:`EXECUTION_FIELDS` say how the steps run on the hardware at hand,
    not what they compute: they are left out of the run id (a run started on 8 GPUs
    resumes on 4, or on 2 CPU ranks) and recorded with the run.
    """

    EXECUTION_FIELDS: ClassVar[tuple[str, ...]] = (
        "micro_batch_size",
        "loader_workers",
        "prefetch_factor",
        "compile",
        "tf32",
        "keep_checkpoints",
        "keep_checkpoint_steps",
    )
    # Added after run ids were in use: left out of the run id at their defaults, so that
    # the runs started before keep their ids and resume.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "lr_decay",
        "min_lr",
        "weight_decay_on",
        "warmup_offset",
        "ema_offset",
        "ema_init",
        "time_strata",
        "loss_scale",
    )

    steps: int = 0
    """Optimizer steps to train; 0: nothing to train (evaluation only)."""
    global_batch_size: int = 256
    """Rows (sequences, images or toy samples) of one optimizer step over all ranks and
    micro-batches (the paper: 512)."""
    lr: float = field(
        default=1e-3,
        metadata=within(
            0,
            1,
            low_open=True,
            why="an AdamW step moves each weight by about lr whatever the gradient's "
            "scale, so past 1 every step moves the weights further than their own size",
        ),
    )
    """AdamW learning rate after the warm-up, then constant (text: 3e-4, images: 1e-4); in
    (0, 1]: the step lr m / (sqrt(v) + eps) moves each weight by at most about lr."""
    betas: tuple[float, float] = field(
        default=(0.9, 0.999),
        metadata=within(
            0, 1, high_open=True, why="AdamW's moving-average decays; at 1 they never update"
        ),
    )
    """AdamW (beta_1, beta_2), each in [0, 1) (text: (0.9, 0.999), images: (0.9, 0.95))."""
    weight_decay: float = field(
        default=0.0, metadata=within(0, why="a negative decay grows every weight each step")
    )
    """AdamW decoupled weight decay, >= 0 with lr x weight_decay < 1 (text: 0, images:
    0.01): each step multiplies the weights by 1 - lr_n weight_decay."""
    weight_decay_on: Literal["all", "matrices"] = "all"
    """Parameters the weight decay applies to: all, or the matrices and embedding tables
    only (not biases and norm gains, as in GPT-2 and nanoGPT)."""
    warmup_steps: int = 0
    """Linear warm-up over W steps, lr_n = lr min(1, (n + warmup_offset) / W) at step n
    (0-based); 0: the full lr from the first step (text: 2500)."""
    warmup_offset: int = 1
    """The warm-up's count: 1 gives lr (n + 1) / W, the full lr from step W - 1; 0 gives
    lr n / W, lr 0 at the first step and the full lr from step W (transformers'
    get_constant_schedule_with_warmup, the authors' text code)."""
    lr_decay: Literal["constant", "cosine"] = "constant"
    """After the warm-up: a constant lr (the paper), or a cosine from lr down to min_lr at
    the last step (nanoGPT's small-GPT recipe)."""
    min_lr: float = 0.0
    """The cosine's last learning rate (nanoGPT: lr / 10)."""
    grad_clip: float | None = field(
        default=None, metadata=within(0, low_open=True, why="or null: no clipping")
    )
    """Largest gradient norm, larger ones are scaled down; null: no clipping (text: 1.0,
    images: null)."""
    loss_scale: Literal["none", "dynamic"] = "none"
    """none: backward on the loss. dynamic: torch's GradScaler law (the authors' image
    training, which passes its float32 loss through one): backward on S * loss, the
    gradients unscaled before the step, a step whose scaled gradients hold an inf or NaN
    skipped with S halved, S doubled after 2000 clean steps, from S = 2^16
    (:mod:`benchmarks.training.loss_scale`). Not with 16-mixed, which scales by itself."""
    ema: float | None = None
    """Decay d of the weight EMA, updated with d_n = min(d, (1 + k) / (10 + k)) where
    k = n + ema_offset and n is the number of updates before this one; evaluation uses the
    EMA weights. null: no EMA (text: 0.9999, images: 0.999)."""
    ema_offset: int = 0
    """The EMA warm-up's count: 0 counts the updates before this one (d_0 = 1/10); 1
    counts this one too (d_0 = 2/11), as the authors' EMA, which increments its counter
    before it computes the decay."""
    ema_init: Literal["weights", "random"] = "weights"
    """Where the EMA starts when the run is fine-tuned (init_from): weights, the loaded
    upstream weights training starts from; random, the random initial weights the network
    had before they were loaded (BD3-LM's code builds its EMA before loading). Without
    init_from both are the initial weights."""
    time_strata: int | None = None
    """Training times stratified over each run of n consecutive rows of the global batch:
    row j draws r_j ~ U(0, 1) and takes t_j = eps + (1 - eps) (r_j + (j mod n)) / n (block
    diffusion: strata over each group's rows x blocks, in its window); n divides
    global_batch_size, and no rank or micro-batch split changes the times. null: strata
    over the whole global batch; 1: an independent uniform time per row (the authors'
    image training); 16: their text training's forward calls of 16 rows."""
    checkpoint_every: int = 500
    """Optimizer steps between checkpoints; a requeued job resumes from the last one."""
    keep_checkpoints: bool | None = None
    """Keep every periodic checkpoint (``step<n>.ckpt``) beside ``last.ckpt``, for FID or
    likelihood against training steps (``benchmarks.perf.image_fid_curve``); false: the
    newest only; null: all at the paper scale, the newest at the cpu scale. Storage only,
    so not part of the run id."""
    keep_checkpoint_steps: tuple[int, ...] = ()
    """Also keep the checkpoints of these optimizer steps (``step<n>.ckpt``, saved even off
    the checkpoint_every grid; a step past train.steps is never reached), for runs
    fine-tuned from them (init_from: ...@n). Storage only, so not part of the run id."""
    log_every: int = 50
    """Optimizer steps between logged training losses and throughput records."""
    precision: Literal["auto", "fastest", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    """Lightning precision (the paper: bf16 for text, fp32 for images). fastest: replaced
    by bf16-mixed where the machine computes bfloat16 natively, else 32-true, before the
    run id is computed (:mod:`benchmarks.config.precision`); auto: bf16-mixed on GPUs that
    compute bfloat16 natively, else 32-true (on a CPU too), decided where the run starts
    (outside the run id)."""
    micro_batch_size: int | None = None
    """Rows of one forward/backward pass on a rank; null: global_batch_size / world size
    (one micro-batch per step)."""
    loader_workers: int | None = None
    """DataLoader worker processes per rank; null: 2 on a GPU (reads overlap the step),
    0 on the CPU (workers would compete with training for the same cores)."""
    prefetch_factor: int = 2
    """Batches each DataLoader worker prepares ahead."""
    compile: bool = False
    """torch.compile the network (used on CUDA only)."""
    tf32: bool = True
    """Allow TensorFloat-32 matmuls (used on Ampere and newer GPUs only)."""
    init_from: str | None = None
    """Fine-tuning: start from the network weights (EMA where kept) of the last checkpoint
    of run "experiment/variant" at this scale, or of its kept checkpoint at step n with
    "experiment/variant@n"; null: train from scratch."""
    init_overrides: tuple[str, ...] = ()
    """The ``--set`` overrides the init_from run was swept with (they fix its run id)."""

    def __post_init__(self) -> None:
        if self.precision == FASTEST:
            object.__setattr__(self, "precision", fastest_training_precision())
        if self.steps < 0 or self.warmup_steps < 0:
            raise ConfigError("train.steps and train.warmup_steps must be >= 0")
        positive(
            "train",
            global_batch_size=self.global_batch_size,
            lr=self.lr,
            checkpoint_every=self.checkpoint_every,
            log_every=self.log_every,
            prefetch_factor=self.prefetch_factor,
        )
        if self.micro_batch_size is not None:
            positive("train", micro_batch_size=self.micro_batch_size)
        strata = self.time_strata
        if strata is not None and not (
            type(strata) is int and strata >= 1 and self.global_batch_size % strata == 0
        ):
            raise ConfigError(
                f"train.time_strata: expected null or a divisor of train.global_batch_size="
                f"{self.global_batch_size}, got {strata}"
            )
        if self.lr * self.weight_decay >= 1.0:
            raise ConfigError(
                f"train.weight_decay: must be < 1 / train.lr = {1.0 / self.lr:g}, got "
                f"{self.weight_decay} (each AdamW step multiplies the weights by "
                "1 - lr x weight_decay, which must stay positive)"
            )
        if not 0.0 <= self.min_lr <= self.lr:
            raise ConfigError(
                f"train.min_lr: must be in [0, train.lr={self.lr}], got {self.min_lr}"
            )
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ConfigError(f"train.loader_workers: must be >= 0, got {self.loader_workers}")
        for name in ("warmup_offset", "ema_offset"):
            value = getattr(self, name)
            if type(value) is not int or value not in (0, 1):
                raise ConfigError(f"train.{name}: expected 0 or 1, got {value!r}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"train.ema: must be in (0, 1) or null, got {self.ema}")
        if self.loss_scale not in ("none", "dynamic"):
            raise ConfigError(
                f"train.loss_scale: expected 'none' or 'dynamic', got {self.loss_scale!r}"
            )
        if self.loss_scale == "dynamic" and self.precision == "16-mixed":
            raise ConfigError(
                "train.loss_scale: 'dynamic' with train.precision=16-mixed would scale twice "
                "(Lightning's float16 precision has its own scaler); use 'none'"
            )
        if self.init_from is not None:
            source, at, step = self.init_from.partition("@")
            if len(source.split("/")) != 2 or (at and not (step.isdigit() and int(step) > 0)):
                raise ConfigError(
                    "train.init_from: expected 'experiment/variant' or "
                    f"'experiment/variant@step' (step > 0), got {self.init_from!r}"
                )
        if any(step < 1 for step in self.keep_checkpoint_steps):
            raise ConfigError(
                f"train.keep_checkpoint_steps: steps must be >= 1, got "
                f"{list(self.keep_checkpoint_steps)}"
            )

    @property
    def init_source(self) -> tuple[str, str] | None:
        """(experiment, variant) of the run this one is fine-tuned from, if any."""
        if self.init_from is None:
            return None
        experiment, variant = self.init_from.partition("@")[0].split("/")
        return experiment, variant

    @property
    def init_step(self) -> int | None:
        """The upstream step of ``init_from: experiment/variant@step``; None: its last."""
        step = None if self.init_from is None else self.init_from.partition("@")[2]
        return int(step) if step else None

    def split(self, world_size: int) -> tuple[int, int]:
        """(micro-batch rows, micro-batches per step) on each of ``world_size`` ranks."""
        if world_size < 1:
            raise ConfigError(f"world size: must be >= 1, got {world_size}")
        if self.global_batch_size % world_size:
            raise ConfigError(
                f"train.global_batch_size: {self.global_batch_size} rows do not split over "
                f"{world_size} ranks; expected a multiple of {world_size}"
            )
        per_rank = self.global_batch_size // world_size
        micro = self.micro_batch_size or per_rank
        if per_rank % micro:
            raise ConfigError(
                f"train.micro_batch_size: {micro} does not divide the {per_rank} rows of each "
                f"of {world_size} ranks (train.global_batch_size={self.global_batch_size})"
            )
        return micro, per_rank // micro

    def lr_factor(self, step: int) -> float:
        """lr_n / lr at optimizer step n (0-based), with W = warmup_steps, o = warmup_offset
        and F = max(0, W - o) the first step at the full lr:

        (n + o) / W while n < F; then 1 (constant), or (cosine, m = min_lr / lr)
        m + (1 - m) (1 + cos(pi p)) / 2 with p = (n - F) / (steps - 1 - F) in [0, 1],
        so that the first step after the warm-up has lr and the last has min_lr.
        """
        first = max(0, self.warmup_steps - self.warmup_offset)
        if step < first:
            return (step + self.warmup_offset) / self.warmup_steps
        if self.lr_decay == "constant":
            return 1.0
        progress = min(1.0, max(0.0, (step - first) / max(1, self.steps - 1 - first)))
        floor = self.min_lr / self.lr
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def math_dict(self) -> dict[str, Any]:
        """The settings that define the optimisation (the run id's part of this config)."""
        out = dataclasses.asdict(self)
        for name in self.EXECUTION_FIELDS:
            out.pop(name)
        defaults = TrainConfig()
        for name in self.LATER_FIELDS:
            if out[name] == getattr(defaults, name):
                out.pop(name)
        return out
