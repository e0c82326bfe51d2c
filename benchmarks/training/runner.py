"""Execute one run config: track, train (resumable), evaluate, log. Idempotent.

This is the function every launcher calls (in-process, as a local process, or as a Slurm
array task). The main rank first takes the run directory's lease
(:mod:`benchmarks.runtime.lease`), so one run id is worked on by one job at a time; it then
decides for every rank: a run whose MLflow run is complete is skipped; an incomplete one
continues in the same MLflow run from its last checkpoint.

A run stopped by Ctrl-C or SIGTERM is marked ``interrupted`` (MLflow status KILLED, never
FINISHED), with its checkpoint saved if it was training; the next start resumes it.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..config.experiments import upstream_config
from ..config.run_config import RunConfig
from ..core import ConfigError, EvalContext, Metric
from ..evaluation.ranks import evaluation_ranks
from ..evaluation.shards import Sharding
from ..evaluation.signals import EvaluationSignals
from ..registry import MODELS, TASKS
from ..runtime.distributed import World, current_world, share_from_main
from ..runtime.lease import RunBusy, RunLease
from ..runtime.preemption import Interrupted, Preempted, Terminated, terminate_raises
from ..safe_files import UnsafePath, check_not_symlink, ensure_directory
from ..tracking.tracker import EVAL_TIME_METRIC, Tracker
from ..weights.released import released_model
from .checkpoint_writer import remove_temporaries
from .checkpoints import (
    initialise_from,
    kept_checkpoints,
    load_trained_model,
    resume_checkpoint,
)
from .hardware import Hardware, select_hardware
from .lightning_module import fit

__all__ = ["execute", "RunResult"]

log = logging.getLogger("primebench")

RunResult = dict[str, Any]
PROGRESS_DIR = "evaluation"  # runs/<run id>/evaluation/<stage>/<shard>.npz
PERF_PREFIX = "perf/"


def _device(world: World) -> torch.device:
    """This rank's device: its node-local GPU (one rank per GPU), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def _threads() -> None:
    # Slurm gives each rank cpus_per_task cores; the local launcher splits the machine.
    threads = os.environ.get("PRIMEBENCH_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK")
    if threads:
        torch.set_num_threads(int(threads))


def execute(
    config: RunConfig | dict[str, Any],
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    if_busy: str = "wait",
) -> RunResult:
    """Run ``config`` to completion and return its final metrics.

    Every rank of a data-parallel job calls this; every rank evaluates its share
    (:mod:`benchmarks.evaluation`), the main rank alone writes to MLflow. On the
    scheduler's warning signal the run saves a checkpoint (in training) or stops at the
    next evaluation shard (every finished shard is kept under ``evaluation/``), marks
    its MLflow run requeued and raises :class:`benchmarks.runtime.preemption.Preempted`; on
    SIGINT / SIGTERM it saves, marks the run interrupted and raises
    :class:`benchmarks.runtime.preemption.Interrupted`.

    Args:
        config: a :class:`RunConfig` or its ``to_dict()`` form (what launchers pickle).
        tracking_uri: the tracking store; see
            :func:`benchmarks.tracking.store.resolve_tracking_uri`.
        runs_dir: checkpoints and artifacts go to ``runs_dir/<run id>/``.
        if_busy: if another process holds the run's lease, ``"wait"`` for it (and then
            usually skip the finished run) or ``"exit"`` with :class:`RunBusy`.
    """
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    _threads()
    world = current_world()
    tracker = Tracker(tracking_uri)
    run_dir = Path(runs_dir).resolve() / config.run_id
    with RunLease(run_dir, world.job_id) as lease, terminate_raises():
        skip, existing = _claim(lease, config, tracker, world, if_busy)
        if skip:
            log.info("run %s (%s) is complete; skipping", config.run_id, config.variant)
            return {
                "run_id": config.run_id,
                "mlflow_run_id": existing.info.run_id if existing else None,
                "skipped": True,
                "metrics": dict(existing.data.metrics) if existing else {},
            }
        return _run(config, tracker, world, run_dir)


_SKIP, _TRAIN, _BUSY = "skip", "train", "busy:"
_RANKS_WAIT = timedelta(days=30)  # the other ranks wait as long as the lease may take


def _claim(
    lease: RunLease, config: RunConfig, tracker: Tracker, world: World, if_busy: str
) -> tuple[bool, Any | None]:
    """Take the lease (main rank) and decide for every rank whether to skip the run, and
    (main rank) its existing MLflow run."""
    decision, existing = None, None
    if world.is_main:
        try:
            lease.acquire(if_busy)
        except (RunBusy, UnsafePath) as busy:
            share_from_main(world, _BUSY + str(busy), _RANKS_WAIT)
            raise
        existing = tracker.find_run(config)
        complete = existing is not None and tracker.is_complete(existing)
        decision = _SKIP if complete else _TRAIN
    decision = share_from_main(world, decision, _RANKS_WAIT)
    if decision.startswith(_BUSY):
        raise RunBusy(decision[len(_BUSY) :])
    return decision == _SKIP, existing


def _run(config: RunConfig, tracker: Tracker, world: World, run_dir: Path) -> RunResult:
    hardware = select_hardware(config.train)
    mlflow_run_id = None
    if world.is_main:
        mlflow_run_id = tracker.start(config)
        tags = {**hardware.tags(), **_layout_tags(config, world, hardware)}
        tracker.set_tags(mlflow_run_id, tags)
    ensure_directory(run_dir, "run directory")
    try:
        metrics = _train_and_evaluate(config, tracker, mlflow_run_id, run_dir, world, hardware)
    except Preempted as stop:
        log.warning("%s", stop)  # in the job's log: where it stopped, what it kept
        if mlflow_run_id is not None:
            tracker.requeued(mlflow_run_id, stop.step)
        raise
    except Interrupted as stop:
        log.warning("%s", stop)
        if mlflow_run_id is not None:
            tracker.interrupted(mlflow_run_id, stop.step)
        raise
    except (KeyboardInterrupt, Terminated, SystemExit):
        # Outside training (or a second Ctrl-C): whatever was checkpointed is resumed.
        if mlflow_run_id is not None:
            tracker.interrupted(mlflow_run_id, None)
        raise
    except BaseException as err:
        if mlflow_run_id is not None:
            tracker.fail(mlflow_run_id, err)
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
    released = config.weights is not None  # evaluated as published: nothing to train
    if model is not None and task_cls.trainable and config.train.steps > 0 and not released:
        ema_start = None  # a resumed run reads its EMA from its checkpoint
        if resume_checkpoint(run_dir / "checkpoints")[0] is None:
            ema_start = initialise_from(model, config, run_dir.parent, tracker, mlflow_run_id)
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
            ema_start=ema_start,
        )
        ema = module.ema
    device = _device(world)
    ctx = EvalContext(
        device=device,
        seed=config.seed,
        artifact_dir=run_dir / "artifacts",
        ema=ema is not None,
        runs_dir=run_dir.parent,
    )
    scored = config.run_id  # what the evaluation's kept shards are of
    if config.upstream is not None:
        upstream = upstream_config(config)
        task.check_upstream(upstream)
        if not released:  # released weights replace the upstream run's checkpoints
            if task_cls.needs_model:  # a task that reads the kept checkpoints loads its own
                model, ctx.ema = load_trained_model(upstream, run_dir.parent, device)
            ctx.upstream_run = scored = upstream.run_id
            ctx.kept_checkpoints = tuple(kept_checkpoints(run_dir.parent, upstream.run_id))
            ctx.load_checkpoint = partial(load_trained_model, upstream, run_dir.parent, device)
            if mlflow_run_id is not None:
                tracker.set_tags(mlflow_run_id, {"primebench.upstream_run": upstream.run_id})
    weights_card = None
    if released:
        model, weights_card = released_model(config, model, tracker, mlflow_run_id)
        scored = weights_card
    if model is not None:
        model.to(device).eval()
    ensure_directory(ctx.artifact_dir, "run's artifacts directory")
    progress = ensure_directory(run_dir / PROGRESS_DIR, "evaluation progress directory")
    if world.is_main:  # before the ranks first meet, so no writer is active
        for folder in (ctx.artifact_dir, progress, *progress.glob("**/")):
            remove_temporaries(folder)  # of an evaluation killed while writing
    began = time.perf_counter()
    with EvaluationSignals(config.train.steps, progress) as signals:
        ranks = evaluation_ranks(world, signals)
        ctx.sharding = Sharding(progress, ranks, f"{scored} (ema {ctx.ema})")
        with ema.applied_to(model) if ema is not None else nullcontext():
            output = task.evaluate(model, ctx)
        ranks.close()
    if not world.is_main:
        return {}  # every rank evaluated its share; the main rank reports
    # Wall time of the evaluation: what the dry run's estimate of evaluation-only runs reads.
    card = {"device": str(device), "ranks": world.size}
    elapsed = Metric(EVAL_TIME_METRIC, time.perf_counter() - began, card)
    metrics = [*output.metrics, elapsed]
    if weights_card is not None:  # every number says which published file it scores
        metrics = [replace(m, card={**m.card, "weights": weights_card}) for m in metrics]
    tracker.log_metrics(mlflow_run_id, metrics)
    for subdir, path in output.artifacts:
        check_not_symlink(path, "artifact")  # never upload the file a link points to
        tracker.log_artifacts(mlflow_run_id, {subdir: path})
    # Machine figures (evaluation time, sampling speed) are not results: MLflow only.
    return {m.name: m.value for m in metrics if m.step is None and not is_machine_figure(m.name)}


def is_machine_figure(name: str) -> bool:
    """Whether metric ``name`` is a figure of the machine (``perf/...``), not a result."""
    return name.startswith(PERF_PREFIX)
