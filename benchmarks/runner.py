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
from .core import ConfigError, EvalContext
from .distributed import World, current_world
from .ema import EMA
from .experiments import load_experiment, parse_overrides, upstream_config
from .hardware import Hardware, select_hardware
from .preemption import Preempted
from .registry import MODELS, TASKS
from .tracking import Tracker
from .training import fit

__all__ = ["execute", "RunResult", "load_trained_model"]

log = logging.getLogger("primebench")

RunResult = dict[str, Any]


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _threads() -> None:
    # Slurm gives each rank cpus_per_task cores; the local launcher splits the machine.
    threads = os.environ.get("PRIMEBENCH_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK")
    if threads:
        torch.set_num_threads(int(threads))


def execute(
    config: RunConfig | dict[str, Any],
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
) -> RunResult:
    """Run ``config`` to completion and return its final metrics.

    Every rank of a data-parallel job calls this; the main rank alone writes to MLflow
    and evaluates. On the scheduler's warning signal the run saves a checkpoint, marks
    its MLflow run requeued and raises :class:`benchmarks.preemption.Preempted`.

    Args:
        config: a :class:`RunConfig` or its ``to_dict()`` form (what launchers pickle).
        tracking_uri: MLflow store; see :func:`benchmarks.tracking.resolve_tracking_uri`.
        runs_dir: checkpoints and artifacts go to ``runs_dir/<run id>/``.
    """
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    _threads()
    world = current_world()
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
    hardware = select_hardware(config.train)
    mlflow_run_id = None
    if world.is_main:
        mlflow_run_id = tracker.start(config)
        tags = {**hardware.tags(), **_layout_tags(config, world, hardware)}
        tracker.set_tags(mlflow_run_id, tags)
    run_dir = Path(runs_dir).resolve() / config.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        metrics = _train_and_evaluate(config, tracker, mlflow_run_id, run_dir, world, hardware)
    except Preempted as stop:
        if mlflow_run_id is not None:
            tracker.requeued(mlflow_run_id, stop.step)
        raise
    except BaseException:
        if mlflow_run_id is not None:
            tracker.fail(mlflow_run_id)
        raise
    if mlflow_run_id is not None:
        tracker.finish(mlflow_run_id)
    return {
        "run_id": config.run_id,
        "mlflow_run_id": mlflow_run_id,
        "skipped": False,
        "metrics": metrics,
        "rank": world.rank,
    }


def _layout_tags(config: RunConfig, world: World, hardware: Hardware) -> dict[str, str]:
    micro, accumulation = config.train.split(world.size)
    return {
        "runtime.world_size": str(world.size),
        "runtime.nodes": str(world.nodes),
        "runtime.micro_batch_size": str(micro),
        "runtime.accumulation": str(accumulation),
        "runtime.loader_workers": str(hardware.loader_workers(config.train.loader_workers)),
        "runtime.job_id": world.job_id or "none",
        "runtime.threads": str(torch.get_num_threads()),
    }


def _train_and_evaluate(
    config: RunConfig,
    tracker: Tracker,
    mlflow_run_id: str | None,
    run_dir: Path,
    world: World,
    hardware: Hardware,
) -> dict[str, float]:
    task_cls = TASKS.get(config.task.name)
    task = task_cls(config.task.params, config)
    torch.manual_seed(config.seed)
    model = None
    ema = None
    if config.model is not None:
        entry = MODELS.get(config.model.name)
        model = entry.build(config.model.params, task.data_spec())
    elif task_cls.needs_model and config.upstream is None:
        raise ConfigError(
            f"task {config.task.name!r} needs a model: set model.name, or upstream "
            "to evaluate a trained run"
        )
    if model is not None and task_cls.trainable and config.train.steps > 0:
        if not (run_dir / "checkpoints" / "last.ckpt").exists():
            _initialise(model, config, run_dir.parent, tracker, mlflow_run_id)
        hardware.maybe_compile(getattr(model, "network", model))
        logger = (tracker.uri, mlflow_run_id) if mlflow_run_id is not None else None
        module = fit(
            model,
            task.train_rows(),
            config,
            run_dir,
            world,
            hardware,
            logger,
            extra_callbacks=entry.training_callbacks(config.model.params, task, config.seed),
        )
        ema = module.ema
    if not world.is_main:
        return {}  # the main rank evaluates and reports
    device = _device()
    ctx = EvalContext(
        device=device, seed=config.seed, artifact_dir=run_dir / "artifacts", ema=ema is not None
    )
    if config.upstream is not None:
        upstream = upstream_config(config)
        task.check_upstream(upstream)
        model, ctx.ema = load_trained_model(upstream, run_dir.parent, device)
        ctx.upstream_run = upstream.run_id
        if mlflow_run_id is not None:
            tracker.set_tags(mlflow_run_id, {"primebench.upstream_run": upstream.run_id})
    if model is not None:
        model.to(device).eval()
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    with ema.applied_to(model) if ema is not None else nullcontext():
        output = task.evaluate(model, ctx)
    tracker.log_metrics(mlflow_run_id, output.metrics)
    for subdir, path in output.artifacts:
        tracker.log_artifacts(mlflow_run_id, {subdir: path})
    return {m.name: m.value for m in output.metrics if m.step is None}


def _initialise(
    model: torch.nn.Module,
    config: RunConfig,
    runs_dir: Path,
    tracker: Tracker,
    mlflow_run_id: str | None,
) -> None:
    """Fine-tuning: copy the network weights of ``train.init_from``'s trained run."""
    source = config.train.init_source
    if source is None:
        return
    experiment, variant = source
    try:
        (upstream,) = load_experiment(experiment).resolve(
            config.scale, parse_overrides(list(config.train.init_overrides)), [variant]
        )
    except (ConfigError, FileNotFoundError) as err:
        raise ConfigError(f"train.init_from: {config.train.init_from}: {err}") from None
    trained, ema = load_trained_model(upstream, runs_dir, torch.device("cpu"))
    try:
        model.network.load_state_dict(trained.network.state_dict())
    except (AttributeError, RuntimeError) as err:
        raise ConfigError(
            f"train.init_from: the network of {config.train.init_from} (run "
            f"{upstream.run_id}) does not fit this model: {err}"
        ) from None
    log.info("initialised from %s (run %s, ema=%s)", config.train.init_from, upstream.run_id, ema)
    if mlflow_run_id is not None:
        tracker.set_tags(
            mlflow_run_id, {"primebench.init_run": upstream.run_id, "primebench.init_ema": str(ema)}
        )


def load_trained_model(
    config: RunConfig, runs_dir: str | Path, device: torch.device | None = None
) -> tuple[torch.nn.Module, bool]:
    """The model of ``config`` with the weights of its last checkpoint (EMA weights when
    the run kept an EMA). Returns (model in eval mode, whether EMA weights were used)."""
    if config.model is None:
        raise ValueError(f"{config.experiment}/{config.variant} has no model")
    path = Path(runs_dir) / config.run_id / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint {path} for {config.experiment}/{config.variant} "
            f"(run id {config.run_id}); train it first: primebench sweep "
            f"{config.experiment} --variant {config.variant} --scale {config.scale}"
        )
    task = TASKS.get(config.task.name)(config.task.params, config)
    model = MODELS.get(config.model.name).build(config.model.params, task.data_spec())
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    )
    ema_state = {k[len("ema.") :]: v for k, v in state.items() if k.startswith("ema.")}
    if ema_state:
        ema = EMA(model, config.train.ema or 0.5)
        ema.load_state_dict(ema_state)
        ema.copy_to(model)
    return model.to(device or _device()).eval(), bool(ema_state)
