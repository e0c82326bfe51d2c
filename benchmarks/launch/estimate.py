"""Cost estimates of a sweep before it is submitted: device-hours and allocations.

For a run of ``steps`` optimizer steps on a layout of W ranks with D devices (GPUs, or
CPU ranks without GPUs) and a step time of t seconds measured on W' ranks:

    wall hours   = steps * t * (W' / W) / 3600     (ideal scaling between layouts)
    device-hours = wall hours * D                  (= steps * t * D / 3600 when W' = W)
    allocations  = ceil(wall hours / (timeout_min / 60))   one per time limit: the job
                                                           requeues itself allocations - 1 times

The step time comes from the tracking store when a run of the same experiment at the same
scale logged ``perf/step_time_s`` (the same run id first, then the same variant, then the
median of the experiment's runs), else from the user (``--step-time``, taken to be
measured on the planned layout).

A run that only evaluates (an evaluation task, or released weights: no training; see
:mod:`benchmarks.launch.job_kinds`) is estimated from its evaluation time, the first of:

1. ``perf/eval_time_s`` logged by this run (same run id);
2. ``perf/eval_time_s`` of a run of the same variant that drew as many samples
   (``task.sample_count``);
3. the sampling throughput ``perf/samples_per_s`` a run of the same variant logged, per
   device (the sampler calls' seconds summed over the ranks; its card names the device),
   scaled to this run's samples: ``sample_count / rate`` on one rank;
4. the median of the experiment's runs that drew as many samples, each time taken back
   to one rank;

all at the same scale. A time is measured on the ranks of its run (the tag
``runtime.world_size``; one when absent: an evaluation outside the runner is one
process). The evaluation splits over the ranks of its job, up to its number of shards S
(:mod:`benchmarks.launch.eval_scaling`), so on a layout of R ranks

    wall hours   = t * speedup(R', S) / speedup(R, S) / 3600,  speedup(R, S) = S / ceil(S / R)
    device-hours = wall hours * D

(t measured on R' ranks; t / speedup(R, S) for a throughput's t = N / rate). Without any
measurement, the estimate says to measure first. An evaluation cut by a time limit keeps
its finished shards and resumes from them, so it takes ceil(wall / limit) allocations.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

from ..config.run_config import RunConfig
from ..tracking.store_reader import StoreReader, run_state
from ..tracking.tracker import EVAL_TIME_METRIC, RUN_ID_TAG, SAMPLES_METRIC, STEP_METRIC
from .eval_scaling import evaluation_shards, sample_count, speedup
from .job_kinds import job_kind

__all__ = [
    "Estimate",
    "Layout",
    "StepTime",
    "estimate",
    "measured_eval_time",
    "measured_step_time",
]

_MEASURED_STATES = ("done", "running", "requeued", "interrupted")


@dataclass(frozen=True)
class StepTime:
    """Seconds per optimizer step, measured on ``world`` ranks (None: the planned ones)."""

    seconds: float
    world: int | None
    source: str  # how it was obtained, for the dry-run listing


@dataclass(frozen=True)
class Layout:
    """Resources of one job: ``nodes`` x ``ranks_per_node`` ranks, GPUs or CPU ranks."""

    nodes: int = 1
    ranks_per_node: int = 1
    gpus_per_node: int = 0
    timeout_min: int | None = None  # None: no time limit (in-process)
    max_requeues: int | None = None

    @property
    def world(self) -> int:
        return self.nodes * self.ranks_per_node

    @property
    def devices(self) -> int:
        """What is billed per job: GPUs, or CPU ranks when there are no GPUs."""
        return self.nodes * (self.gpus_per_node or self.ranks_per_node)

    @property
    def unit(self) -> str:
        return "GPU-h" if self.gpus_per_node else "CPU-rank-h"

    def describe(self) -> str:
        if self.gpus_per_node:
            return f"{self.nodes}x{self.gpus_per_node} GPU"
        return f"{self.nodes}x{self.ranks_per_node} CPU rank"

    def limit(self) -> str:
        if self.timeout_min is None:
            return "none"
        if self.timeout_min % 60 == 0:
            return f"{self.timeout_min // 60}h"
        return f"{self.timeout_min}min"


@dataclass(frozen=True)
class Estimate:
    """The cost of one run; hours are None when there is no step time (or no training).

    An evaluation-only run's hours come from a measured evaluation time (``eval_time``:
    seconds, the ranks and where it was measured), else are None: measure first."""

    steps: int
    step_time: StepTime | None
    wall_hours: float | None
    device_hours: float | None
    allocations: int | None
    eval_time: StepTime | None = None

    @property
    def eval_only(self) -> bool:
        return self.steps == 0


def _world(run: object) -> int | None:
    raw = run.data.tags.get("runtime.world_size")  # type: ignore[attr-defined]
    return int(raw) if raw and raw.isdigit() else None


def _candidates(store: StoreReader, config: RunConfig, metric: str) -> list[Any]:
    """The runs of ``config``'s experiment and scale that logged ``metric``."""
    return [
        run
        for run in store.runs(config.experiment).values()
        if metric in run.data.metrics
        and run.data.tags.get("primebench.scale") == config.scale
        and run_state(run) in _MEASURED_STATES
    ]


def measured_step_time(
    store: StoreReader, config: RunConfig, metric: str = STEP_METRIC
) -> StepTime | None:
    """The step time (or another ``metric`` of seconds) of ``config`` logged in
    ``store``, or None; see the module docstring."""
    if store.client is None:
        return None
    candidates = _candidates(store, config, metric)
    for label, tag, value in (
        ("measured, this run", RUN_ID_TAG, config.run_id),
        ("measured, same variant", "primebench.variant", config.variant),
    ):
        found = [r for r in candidates if r.data.tags.get(tag) == value]
        if found:
            run = found[0]
            return StepTime(run.data.metrics[metric], _world(run), label)
    if not candidates:
        return None
    # Per-device cost, so that runs measured on different layouts can be pooled.
    worlds = [_world(r) or 1 for r in candidates]
    cost = statistics.median(
        r.data.metrics[metric] * w for r, w in zip(candidates, worlds, strict=True)
    )
    return StepTime(cost, 1, f"measured, median of {len(candidates)} {config.experiment} run(s)")


def _same_count(run: Any, count: int | None) -> bool:
    """Whether ``run`` drew ``count`` samples (a run that did not record it counts)."""
    logged = run.data.params.get("task.sample_count")
    return count is None or logged is None or logged == str(count)


def _device(run: Any, metric: str) -> str:
    try:
        card = json.loads(run.data.tags.get(f"card.{metric}", "{}"))
    except json.JSONDecodeError:
        card = {}
    return str(card.get("device", "an unnamed device")) if isinstance(card, dict) else "?"


def _eval_time(run: Any, source: str) -> StepTime:
    """A run's evaluation time, on the ranks it ran on (one when untagged)."""
    return StepTime(run.data.metrics[EVAL_TIME_METRIC], _world(run) or 1, source)


def measured_eval_time(store: StoreReader, config: RunConfig) -> StepTime | None:
    """The evaluation wall time of ``config`` from ``store`` and the ranks it was
    measured on, or None; the order is the module docstring's."""
    if store.client is None:
        return None
    timed = _candidates(store, config, EVAL_TIME_METRIC)
    own = [r for r in timed if r.data.tags.get(RUN_ID_TAG) == config.run_id]
    if own:
        return _eval_time(own[0], "measured, this run")
    count = sample_count(config)
    alike = [r for r in timed if _same_count(r, count)]
    variant = [r for r in alike if r.data.tags.get("primebench.variant") == config.variant]
    if variant:
        return _eval_time(variant[0], "measured, same variant")
    rated = [
        r
        for r in _candidates(store, config, SAMPLES_METRIC)
        if r.data.tags.get("primebench.variant") == config.variant
        and r.data.metrics[SAMPLES_METRIC] > 0
    ]
    if count is not None and rated:
        rate = rated[0].data.metrics[SAMPLES_METRIC]
        where = _device(rated[0], SAMPLES_METRIC)
        source = f"{count:,} samples at {rate:.3g}/s per device on {where}, same variant"
        return StepTime(count / rate, 1, source)  # a rate per device: the time of one rank
    if not alike:
        return None
    # Each time taken back to one rank, so that runs on different layouts pool.
    shards = evaluation_shards(config)
    cost = statistics.median(
        t.seconds * speedup(t.world or 1, shards) for t in (_eval_time(r, "") for r in alike)
    )
    return StepTime(cost, 1, f"measured, median of {len(alike)} run(s)")


def estimate(
    config: RunConfig,
    step_time: StepTime | None,
    layout: Layout,
    eval_time: StepTime | None = None,
) -> Estimate:
    """Hours and allocations of ``config`` on ``layout``; see the module docstring.
    A run that is not of the training kind (released weights, an evaluation task) has
    no steps."""
    steps = config.train.steps if job_kind(config).name == "training" else 0
    if steps == 0:
        if eval_time is None:
            return Estimate(0, None, None, None, 1)
        shards = evaluation_shards(config)
        measured_on = speedup(eval_time.world or layout.world, shards)
        wall = eval_time.seconds * measured_on / speedup(layout.world, shards) / 3600
        allocations = 1
        if layout.timeout_min is not None:
            allocations = max(1, math.ceil(wall / (layout.timeout_min / 60)))
        return Estimate(0, None, wall, wall * layout.devices, allocations, eval_time)
    if step_time is None:
        return Estimate(steps, step_time, None, None, None)
    scale = (step_time.world or layout.world) / layout.world
    wall = steps * step_time.seconds * scale / 3600
    allocations = 1
    if layout.timeout_min is not None:
        allocations = max(1, math.ceil(wall / (layout.timeout_min / 60)))
    return Estimate(steps, step_time, wall, wall * layout.devices, allocations)
