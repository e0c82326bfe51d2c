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

A run that only evaluates (an evaluation task, or released weights: no training) is
estimated from the evaluation wall time ``perf/eval_time_s`` a run logged (the same run
id, then the same variant, then the median of the experiment's runs at the scale):
evaluation runs on one device of the job, so its device-hours are that wall time times
the devices the job holds. Without a measurement the estimate says to measure first.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .config import RunConfig
from .runstore import RunStore, run_state
from .tracking import RUN_ID_TAG

__all__ = [
    "EVAL_TIME_METRIC",
    "STEP_METRIC",
    "Estimate",
    "Layout",
    "StepTime",
    "estimate",
    "measured_eval_time",
    "measured_step_time",
]

STEP_METRIC = "perf/step_time_s"
EVAL_TIME_METRIC = "perf/eval_time_s"
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

    An evaluation-only run's hours come from a measured evaluation time (``eval_time``,
    in seconds, and where it was measured), else are None: measure first."""

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


def measured_step_time(
    store: RunStore, config: RunConfig, metric: str = STEP_METRIC
) -> StepTime | None:
    """The step time (or another ``metric`` of seconds, such as the evaluation time) of
    ``config`` logged in ``store``, or None; see the module docstring."""
    if store.client is None:
        return None
    candidates = [
        run
        for run in store.runs(config.experiment).values()
        if metric in run.data.metrics
        and run.data.tags.get("primebench.scale") == config.scale
        and run_state(run) in _MEASURED_STATES
    ]
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
    if metric == EVAL_TIME_METRIC:  # one device evaluates, whatever the layout
        cost = statistics.median(r.data.metrics[metric] for r in candidates)
        return StepTime(cost, None, f"measured, median of {len(candidates)} run(s)")
    # Per-device cost, so that runs measured on different layouts can be pooled.
    worlds = [_world(r) or 1 for r in candidates]
    cost = statistics.median(
        r.data.metrics[metric] * w for r, w in zip(candidates, worlds, strict=True)
    )
    return StepTime(cost, 1, f"measured, median of {len(candidates)} {config.experiment} run(s)")


def measured_eval_time(store: RunStore, config: RunConfig) -> StepTime | None:
    """The evaluation wall time of ``config`` logged in ``store``, or None."""
    return measured_step_time(store, config, EVAL_TIME_METRIC)


def estimate(
    config: RunConfig,
    step_time: StepTime | None,
    layout: Layout,
    eval_time: StepTime | None = None,
) -> Estimate:
    """Hours and allocations of ``config`` on ``layout``; see the module docstring.
    Released weights are evaluated, never trained: such a run has no steps."""
    steps = 0 if config.weights is not None else config.train.steps
    if steps == 0:
        if eval_time is None:
            return Estimate(0, None, None, None, 1)
        wall = eval_time.seconds / 3600
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
