"""What a task provides to the harness."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..data.loader import TrainRows
from ..tracking import Metric

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..report import ReportContext

__all__ = ["DataSpec", "EvalContext", "EvalOutput", "Task"]


@dataclass(frozen=True)
class DataSpec:
    """Token sequences a model must handle: L positions over C classes (for images, the
    (channels, H, W) whose pixel-channel values are the L tokens)."""

    num_classes: int
    seq_len: int
    image_shape: tuple[int, int, int] | None = None


@dataclass
class EvalContext:
    """Where and how an evaluation runs."""

    device: torch.device
    seed: int
    artifact_dir: Path
    ema: bool
    runs_dir: Path | None = None  # where other runs' checkpoints live


@dataclass
class EvalOutput:
    metrics: list[Metric]
    # artifact sub-directory -> file to upload
    artifacts: list[tuple[str, Path]] = field(default_factory=list)


class Task:
    """A benchmark task: its data, its evaluation, and its part of the report.

    Subclasses define ``Params`` (a frozen dataclass of settings), and register with
    ``@TASKS.register(name)``. A task with ``trainable = False`` needs no model training
    (``model`` may then be null in the experiment file).
    """

    Params: ClassVar[type]
    trainable: ClassVar[bool] = True
    needs_model: ClassVar[bool] = True
    report_title: ClassVar[str] = ""

    def __init__(self, params: Any, config: RunConfig):
        self.params = params
        self.config = config

    def data_spec(self) -> DataSpec:
        raise NotImplementedError

    def train_rows(self) -> TrainRows:
        """The rows training batches are drawn from (see :mod:`benchmarks.data.loader`)."""
        raise NotImplementedError(f"task {type(self).__name__} has no training data")

    def validation_rows(self) -> TrainRows:
        """Held-out rows in the training rows' form (for searches during training)."""
        raise NotImplementedError(f"task {type(self).__name__} has no held-out rows")

    def evaluate(self, model: nn.Module | None, ctx: EvalContext) -> EvalOutput:
        raise NotImplementedError

    @classmethod
    def report(cls, ctx: ReportContext) -> None:
        """Render this task's tables and figures from the runs in ``ctx``."""
