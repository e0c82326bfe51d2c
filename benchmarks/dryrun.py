"""``--dry-run``: list what a sweep or a reproduction would submit, and what it would cost.

Every job is listed (experiment, variant, run id, resources, time limit, the experiments
it waits for) with its estimated device-hours and allocations (see
:mod:`benchmarks.estimate`). The same checks as a submission run first (profile, batch
split over the ranks, Slurm partition), except that sbatch need not exist; nothing is
submitted and nothing is written, not even an empty tracking store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .core import ConfigError
from .estimate import (
    Estimate,
    Layout,
    StepTime,
    estimate,
    measured_eval_time,
    measured_step_time,
)
from .experiments import upstream_config
from .launch import LOCAL_TIMEOUT_MIN
from .preflight import validate
from .profiles import ClusterProfile
from .runstore import RunStore
from .sqlite_cluster import check_sqlite_for_slurm
from .submission import PlannedExperiment
from .tracking_store import TrackingError, resolve_tracking_uri

__all__ = ["layout_of", "dry_run", "UNKNOWN_STEP_TIME"]

UNKNOWN_STEP_TIME = "unknown (no measured step time; pass --step-time)"
MEASURE_FIRST = "measure first"
_HEADER = (
    "experiment",
    "variant",
    "run id",
    "resources",
    "limit",
    "after",
    "steps",
    "step time",
    "hours",
    "allocs",
)


def layout_of(cluster: str, profile: ClusterProfile | None) -> Layout:
    """The resources of each job of ``cluster`` with ``profile`` (as :mod:`launch` uses)."""
    if cluster == "debug":
        return Layout()
    if profile is None:
        profile = ClusterProfile(timeout_min=LOCAL_TIMEOUT_MIN if cluster == "local" else 60)
    return Layout(
        nodes=profile.nodes,
        ranks_per_node=profile.tasks_per_node,
        gpus_per_node=profile.gpus_per_node,
        timeout_min=profile.timeout_min,
        max_requeues=profile.max_requeues if cluster == "slurm" else None,
    )


def _step_time_text(est: Estimate, layout: Layout) -> str:
    st = est.step_time
    if est.eval_only:
        if est.eval_time is None:
            return "-"
        return f"eval {est.eval_time.seconds / 3600:.3g} h ({est.eval_time.source})"
    if st is None:
        return "unknown"
    where = f" on {st.world} rank(s)" if st.world and st.world != layout.world else ""
    return f"{st.seconds:.3g} s ({st.source}{where})"


def _hours_text(est: Estimate) -> str:
    if est.eval_only:
        return MEASURE_FIRST if est.device_hours is None else f"{est.device_hours:,.1f}"
    return "unknown" if est.device_hours is None else f"{est.device_hours:,.1f}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def dry_run(
    plan: Sequence[PlannedExperiment],
    cluster: str,
    profile: ClusterProfile | None = None,
    *,
    tracking_uri: str | None = None,
    step_time: float | None = None,
    say: Callable[[str], None] = print,
) -> list[Estimate]:
    """Print every job of ``plan`` and the estimated cost; return the estimates in order.

    ``step_time``: seconds per optimizer step on this layout, for runs without a
    measurement in the tracking store."""
    if step_time is not None and step_time <= 0:
        raise ConfigError(f"--step-time: expected seconds > 0, got {step_time}")
    for item in plan:
        validate(item.configs, cluster, profile, check_sbatch=False)
    layout = layout_of(cluster, profile)
    store = RunStore(tracking_uri)
    if cluster == "slurm":
        try:
            check_sqlite_for_slurm(resolve_tracking_uri(tracking_uri), profile)
        except TrackingError as refused:
            say(f"== warning: the submission would be refused: {refused}")
    given = StepTime(step_time, None, "--step-time") if step_time is not None else None
    rows: list[tuple[str, ...]] = [_HEADER]
    estimates: list[Estimate] = []
    subtotals: list[str] = []
    for item in plan:
        after = ", ".join([*item.upstream, *(f"{u}*" for u in item.external)]) or "-"
        hours: float | None = None
        for config in item.configs:
            est = estimate(
                config,
                measured_step_time(store, config) or given,
                layout,
                measured_eval_time(store, config),
            )
            estimates.append(est)
            if est.device_hours is not None:
                hours = (hours or 0.0) + est.device_hours
            rows.append(
                (
                    config.experiment,
                    config.variant,
                    config.run_id,
                    layout.describe(),
                    layout.limit(),
                    after,
                    f"{est.steps:,}",
                    _step_time_text(est, layout),
                    _hours_text(est),
                    "?" if est.allocations is None else str(est.allocations),
                )
            )
        subtotals.append(f"{item.name} " + ("-" if hours is None else f"{hours:,.1f}"))
    total = len(estimates)
    say(
        f"== dry run: {total} job(s) of {len(plan)} experiment(s) on {cluster}; "
        f"hours are {layout.unit}, nothing is submitted"
    )
    for line in _table(rows):
        say(line)
    if any(item.upstream for item in plan):
        say("after: the experiments whose jobs these wait for (Slurm: afterok on their array)")
    if any(item.external for item in plan):
        say("* not part of this submission: its runs must be complete before these start")
    _summary(estimates, layout, subtotals, plan, say)
    _shared_summary(plan, store, given, layout, say)
    return estimates


def _shared_summary(
    plan: Sequence[PlannedExperiment],
    store: RunStore,
    given: StepTime | None,
    layout: Layout,
    say: Callable[[str], None],
) -> None:
    """The runs that one experiment shares with another: listed once above, their hours
    counted once."""
    shared = [(item.name, v, c) for item in plan for v, c in item.shared]
    if not shared:
        return
    say(f"== shared: {len(shared)} variant(s) that are runs of another experiment here")
    trainings: dict[str, Estimate] = {}
    for name, variant, config in shared:
        # A released-weights run is evaluated, never trained: its own cost is counted.
        evaluated = config.weights is not None or config.upstream is None
        trained = config if evaluated else upstream_config(config)
        est = trainings.setdefault(
            trained.run_id,
            estimate(
                trained,
                measured_step_time(store, trained) or given,
                layout,
                measured_eval_time(store, trained),
            ),
        )
        via = "" if trained is config else f", evaluating {trained.experiment}/{trained.variant}"
        what = "evaluation" if config.weights is not None else "training"
        say(
            f"   {name}/{variant} is {config.experiment}/{config.variant} [{config.run_id}]"
            f"{via}: {_hours_text(est)} {layout.unit} of {what}, counted once"
        )
    hours = [e.device_hours for e in trainings.values()]
    text = "unknown" if None in hours else f"{sum(hours):,.1f}"
    runs = "run(s) of released weights" if shared[0][2].weights else "training run(s)"
    say(f"   their {len(trainings)} {runs}: {text} {layout.unit}, each counted once")


def _summary(
    estimates: list[Estimate],
    layout: Layout,
    subtotals: list[str],
    plan: Sequence[PlannedExperiment],
    say: Callable[[str], None],
) -> None:
    known = [e for e in estimates if e.device_hours is not None]
    unknown = [e for e in estimates if e.device_hours is None and not e.eval_only]
    eval_only = [e for e in estimates if e.eval_only and e.device_hours is None]
    allocations = sum(e.allocations or 0 for e in estimates)
    say(
        f"== estimate: {sum(e.device_hours or 0.0 for e in known):,.1f} {layout.unit} "
        f"for {len(known)} run(s) with a measured time; {allocations} allocation(s) of "
        f"{layout.limit()} for {len(estimates) - len(unknown)} run(s)"
    )
    say("   by experiment (" + layout.unit + "): " + ", ".join(subtotals))
    if unknown:
        say(f"   + {len(unknown)} run(s): {UNKNOWN_STEP_TIME}")
    configs = [c for item in plan for c in item.configs]
    if eval_only:
        first = next(c for c, e in zip(configs, estimates, strict=True) if e.eval_only)
        flags = " --weights released" if first.weights is not None else ""
        say(
            f"   + {len(eval_only)} evaluation-only run(s): {MEASURE_FIRST}: run one of an "
            f"experiment (e.g. primebench sweep {first.experiment} --variant {first.variant} "
            f"--scale {first.scale}{flags} ...); its logged evaluation time "
            "(perf/eval_time_s) then estimates the others"
        )
    _released_lines(configs, estimates, layout, say)
    for line in (line for item in plan for line in item.unavailable):
        say(f"   left out: {line}")
    if layout.max_requeues is not None:
        for config, est in zip(configs, estimates, strict=True):
            if est.allocations is not None and est.allocations - 1 > layout.max_requeues:
                say(
                    f"   warning: {config.experiment}/{config.variant} needs "
                    f"{est.allocations} allocations, but profile.max_requeues is "
                    f"{layout.max_requeues}: raise it, or the run is given up unfinished"
                )


def _released_lines(
    configs: list, estimates: list[Estimate], layout: Layout, say: Callable[[str], None]
) -> None:
    """What a plan of released weights needs: one device per job, and a time limit above
    each evaluation (an evaluation cut by the limit starts over in the next allocation)."""
    released = [c for c in configs if c.weights is not None]
    if not released:
        return
    say(
        f"   {len(released)} run(s) evaluate released weights: no training; evaluation "
        "runs on one device of the job"
        + (
            f", so {layout.devices - 1} of the {layout.devices} devices per job idle: "
            "--profile gpu-1x holds one GPU per job"
            if layout.devices > 1
            else ""
        )
    )
    for config, est in zip(configs, estimates, strict=True):
        limit = layout.timeout_min
        if config.weights is not None and est.wall_hours and limit and est.wall_hours * 60 > limit:
            say(
                f"   warning: {config.experiment}/{config.variant}: its evaluation takes "
                f"{est.wall_hours:.1f} h, above the {layout.limit()} limit; evaluation "
                "does not resume, so raise the profile's timeout_min"
            )
