"""The harness's shared types: errors, validators, metrics, data specs and the bases of
tasks and model entries. Every other module of ``benchmarks`` may import this one; it
imports nothing of ``benchmarks`` (a test checks the import graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from prime import BatchShard, SamplerConfig, SampleResult

if TYPE_CHECKING:  # annotations only
    from .data.loader import TrainRows

__all__ = [
    "ConfigError",
    "positive",
    "require_at_least",
    "Metric",
    "DataSpec",
    "EvalContext",
    "EvalOutput",
    "Task",
    "Model",
    "ModelEntry",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def positive(path: str, **values: float | int) -> None:
    """Raise ConfigError naming the first of ``values`` (``path.name``) that is <= 0."""
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"{path}.{name}: must be > 0, got {value}")


def require_at_least(obj: Any, path: str, keys: tuple[str, ...], minimum: int = 1) -> None:
    """Raise ConfigError naming the first of ``obj``'s fields ``keys`` below ``minimum``."""
    for key in keys:
        value = getattr(obj, key)
        if value < minimum:
            raise ConfigError(f"{path}.{key}: must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class Metric:
    """One reported number and what it means.

    ``card`` says how it was measured: estimator, eps, steps, samples, EMA, split,
    sampling dtype, ... Two numbers with different cards are not comparable.
    """

    name: str
    value: float
    card: dict[str, Any] = field(default_factory=dict)
    step: int | None = None


@dataclass(frozen=True)
class DataSpec:
    """Token sequences a model must handle: L positions over C classes (for images, the
    (channels, H, W) whose pixel-channel values are the L tokens; for text, the BOS
    token that starts every block, which an autoregressive sample starts from)."""

    num_classes: int
    seq_len: int
    image_shape: tuple[int, int, int] | None = None
    bos_id: int | None = None


@dataclass
class EvalContext:
    """Where and how an evaluation runs.

    ``ema``: the model carries EMA weights. ``upstream_run``: the run id of the trained
    run whose checkpoint the runner loaded for this evaluation (``upstream:`` in the
    experiment file), else None. ``kept_checkpoints``: (optimizer step, file) of every
    periodic checkpoint that upstream run kept, in step order, and ``load_checkpoint``
    the function that turns one of those files into (model in eval mode on ``device``,
    whether it carries EMA weights): how a task scores a run along its training.
    """

    device: torch.device
    seed: int
    artifact_dir: Path
    ema: bool
    upstream_run: str | None = None
    kept_checkpoints: tuple[tuple[int, Path], ...] = ()
    load_checkpoint: Callable[[Path], tuple[torch.nn.Module, bool]] | None = None
    runs_dir: Path | None = None
    """The runs directory (``runs_dir/<run id>/``) where a task finds other runs'
    checkpoints (the text task's judge run); None: no other run can be read."""
    sharding: Any = None
    """How the evaluation is split over the job's ranks and kept on disk (a
    ``benchmarks.evaluation.shards.Sharding``; None: one rank, in memory)."""

    @property
    def is_main(self) -> bool:
        """Whether this process writes the evaluation's artifacts (rank 0)."""
        return self.sharding is None or self.sharding.ranks.is_main


@dataclass
class EvalOutput:
    metrics: list[Metric]
    # artifact sub-directory -> file to upload
    artifacts: list[tuple[str, Path]] = field(default_factory=list)


class Task:
    """A benchmark task: its data and its evaluation.

    Subclasses define ``Params`` (a frozen dataclass of settings) and register with
    ``@TASKS.register(name)``. A task with ``trainable = False`` trains nothing: it
    evaluates the model the runner hands it, which is the checkpoint of the run named by
    the experiment's ``upstream:`` section when there is one. A task with ``needs_model =
    False`` is handed none (it simulates, or loads the upstream's kept checkpoints itself).
    A task with ``needs_device = False`` computes on the CPU alone (a simulation): its jobs
    get a cluster profile without GPUs (:mod:`benchmarks.launch.job_kinds`).
    """

    Params: ClassVar[type]
    trainable: ClassVar[bool] = True
    needs_model: ClassVar[bool] = True
    needs_device: ClassVar[bool] = True

    def __init__(self, params: Any, config: Any):
        self.params = params
        self.config = config  # the RunConfig being executed

    def data_spec(self) -> DataSpec:
        raise NotImplementedError

    @classmethod
    def declared_data(cls, params: Any) -> DataSpec | None:
        """The DataSpec the settings alone fix, without reading any file: validation
        checks the model's settings against it (:meth:`ModelEntry.check_data`) before
        anything runs. None: known only once the data is loaded."""
        return None

    def train_rows(self) -> TrainRows:
        """The rows training batches are drawn from (see :mod:`benchmarks.data.loader`)."""
        raise NotImplementedError(f"task {type(self).__name__} has no training data")

    def validation_rows(self) -> TrainRows:
        """Held-out rows in the training rows' form (for searches during training)."""
        raise NotImplementedError(f"task {type(self).__name__} has no held-out rows")

    def check_upstream(self, upstream: Any) -> None:
        """Raise ConfigError if the upstream RunConfig cannot feed this task."""

    def evaluate(self, model: nn.Module | None, ctx: EvalContext) -> EvalOutput:
        raise NotImplementedError


class ModelEntry:
    """A registered model: ``Params`` (a frozen dataclass), ``build(params, data)`` (a
    :class:`Model`), and the training callbacks the model needs (default: none)."""

    Params: ClassVar[type]

    @classmethod
    def build(cls, params: Any, data: DataSpec) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def check_data(cls, params: Any, data: DataSpec) -> None:
        """Raise ConfigError naming the setting with which ``params`` cannot model
        ``data`` (e.g. more sub-tokens than the vocabulary has digits); run at validation
        against the task's :meth:`Task.declared_data`. Default: nothing to check."""

    @classmethod
    def training_callbacks(cls, params: Any, task: Task, seed: int) -> list[Any]:
        """Lightning callbacks to train this model with (e.g. a schedule search)."""
        return []


@runtime_checkable
class Model(Protocol):
    """What every model gives the harness: autoregressive, MDLM, Prime, block diffusion.

    * ``training_loss(x0, generator, shard)`` -> (scalar loss, named per-token parts);
    * ``time_draws(seq_len)``: diffusion times one likelihood draw of a sequence takes
      (0: the NLL is exact, 1 per sequence, k for k blocks);
    * ``block_nll(x0, t, generator)`` -> {estimator: (B,) float64 NLL sums}, at times t
      ((B,) or (B, k); None when ``time_draws`` is 0): "exact" (AR), "valid_bound" and
      "published" (diffusion);
    * ``sample(batch, length, config, generator=, prefix=)`` -> SampleResult, with NFE
      and idle counts (AR: NFE = generated length, no idle step).
    """

    def training_loss(
        self,
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
    ) -> tuple[torch.Tensor, Any]: ...

    def time_draws(self, seq_len: int) -> int: ...

    def block_nll(
        self, x0: torch.Tensor, t: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]: ...

    def sample(
        self,
        batch_size: int,
        seq_len: int,
        config: SamplerConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
    ) -> SampleResult: ...
