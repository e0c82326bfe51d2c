"""Execute one run config: track, train (resumable), evaluate, log. Idempotent.

This is the function every launcher calls (in-process, as a local process, or as a Slurm
array task). A run whose MLflow run is complete is skipped; an incomplete one continues
in the same MLflow run from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig
from .registry import MODELS, TASKS
from .tasks.base import EvalContext
from .tracking import Tracker

__all__ = ["execute", "RunResult"]

log = logging.getLogger("primebench")

RunResult = dict[str, Any]


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def execute(
    config: RunConfig | dict[str, Any],
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
) -> RunResult:
    """Run ``config`` to completion and return its final metrics.

    Args:
        config: a :class:`RunConfig` or its ``to_dict()`` form (what launchers pickle).
        tracking_uri: MLflow store; see :func:`benchmarks.tracking.resolve_tracking_uri`.
        runs_dir: checkpoints and artifacts go to ``runs_dir/<run id>/``.
    """
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    threads = os.environ.get("PRIMEBENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    tracker = Tracker(tracking_uri)
    existing = tracker.find_run(config)
    if existing is not None and tracker.is_complete(existing):
        log.info("run %s (%s) is complete; skipping", config.run_id, config.variant)
        return {
            "run_id": config.run_id,
            "mlflow_run_id": existing.info.run_id,
            "skipped": True,
            "metrics": dict(existing.data.metrics),
        }
    mlflow_run_id = tracker.start(config)
    run_dir = Path(runs_dir).resolve() / config.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        metrics = _train_and_evaluate(config, tracker, mlflow_run_id, run_dir)
    except BaseException:
        tracker.fail(mlflow_run_id)
        raise
    tracker.finish(mlflow_run_id)
    return {
        "run_id": config.run_id,
        "mlflow_run_id": mlflow_run_id,
        "skipped": False,
        "metrics": metrics,
    }


def _train_and_evaluate(
    config: RunConfig, tracker: Tracker, mlflow_run_id: str, run_dir: Path
) -> dict[str, float]:
    task_cls = TASKS.get(config.task.name)
    task = task_cls(config.task.params, config)
    torch.manual_seed(config.seed)
    model = None
    ema = None
    if config.model is not None:
        model = MODELS.get(config.model.name).build(config.model.params, task.data_spec())
    elif task_cls.needs_model:
        raise ValueError(f"task {config.task.name!r} needs a model; set model.name")
    if model is not None and task_cls.trainable and config.train.steps > 0:
        from .training import fit

        module = fit(model, task, config, run_dir, tracker.uri, mlflow_run_id)
        ema = module.ema
    device = _device()
    if model is not None:
        model.to(device).eval()
    ctx = EvalContext(
        device=device, seed=config.seed, artifact_dir=run_dir / "artifacts", ema=ema is not None
    )
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    with ema.applied_to(model) if ema is not None else nullcontext():
        output = task.evaluate(model, ctx)
    tracker.log_metrics(mlflow_run_id, output.metrics)
    for subdir, path in output.artifacts:
        tracker.log_artifacts(mlflow_run_id, {subdir: path})
    return {m.name: m.value for m in output.metrics if m.step is None}
