"""The lines under a dry run's table (:mod:`benchmarks.launch.dryrun`): the total cost, what is
unknown and how to measure it, the profile of each kind of job, runs shared between
experiments, and warnings about time limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config.run_config import RunConfig
from .estimate import Estimate, Layout
from .eval_scaling import evaluation_shards
from .job_kinds import KINDS, JobKind
from .job_profiles import ChosenProfile, JobProfiles

__all__ = ["UNKNOWN_STEP_TIME", "MEASURE_FIRST", "PlannedJob", "hours_text", "summary"]

UNKNOWN_STEP_TIME = "unknown (no measured step time; pass --step-time)"
MEASURE_FIRST = "measure first"

Say = Callable[[str], None]


@dataclass(frozen=True)
class PlannedJob:
    """One row of the dry run: a run, its kind, the profile it gets, and its cost."""

    experiment: str  # of the plan: a shared run's experiment may be another
    config: RunConfig
    kind: JobKind
    chosen: ChosenProfile
    layout: Layout
    estimate: Estimate


def hours_text(est: Estimate, layout: Layout, main_unit: str) -> str:
    """Device-hours of a job; in its own unit when that is not the plan's (a CPU job of
    a GPU plan)."""
    if est.device_hours is None:
        return MEASURE_FIRST if est.eval_only else "unknown"
    unit = "" if layout.unit == main_unit else f" {layout.unit}"
    return f"{est.device_hours:,.1f}{unit}"


def _amount(jobs: Sequence[PlannedJob], main_unit: str, *, bare: bool = False) -> str:
    """The summed device-hours of ``jobs`` per unit, the plan's first (``bare``: without
    its name)."""
    totals: dict[str, float] = {}
    for job in jobs:
        if job.estimate.device_hours is not None:
            unit = job.layout.unit
            totals[unit] = totals.get(unit, 0.0) + job.estimate.device_hours
    if not totals:
        totals[main_unit] = 0.0
    units = sorted(totals, key=lambda unit: unit != main_unit)
    return " + ".join(
        f"{totals[u]:,.1f}" + ("" if bare and u == main_unit else f" {u}") for u in units
    )


def summary(
    jobs: list[PlannedJob],
    plan: Sequence,
    profiles: JobProfiles,
    cluster: str,
    main: Layout,
    say: Say,
) -> None:
    """Every line under the table, but the shared runs'."""
    if cluster == "slurm":
        _profile_lines(jobs, profiles, say)
    known = [j for j in jobs if j.estimate.device_hours is not None]
    unknown = [j for j in jobs if j.estimate.device_hours is None and not j.estimate.eval_only]
    eval_only = [j for j in jobs if j.estimate.eval_only and j.estimate.device_hours is None]
    allocations = sum(j.estimate.allocations or 0 for j in jobs)
    limits = " / ".join(dict.fromkeys(j.layout.limit() for j in jobs)) or main.limit()
    say(
        f"== estimate: {_amount(known, main.unit)} for {len(known)} run(s) with a measured "
        f"time; {allocations} allocation(s) of {limits} for {len(jobs) - len(unknown)} run(s)"
    )
    subtotals = []
    for item in plan:
        timed = [
            j for j in jobs if j.experiment == item.name and j.estimate.device_hours is not None
        ]
        text = _amount(timed, main.unit, bare=True) if timed else "-"
        subtotals.append(f"{item.name} {text}")
    say(f"   by experiment ({main.unit}): " + ", ".join(subtotals))
    if unknown:
        say(f"   + {len(unknown)} run(s): {UNKNOWN_STEP_TIME}")
    if eval_only:
        first = eval_only[0].config
        flags = " --weights released" if first.weights is not None else ""
        say(
            f"   + {len(eval_only)} evaluation-only run(s): {MEASURE_FIRST}: run one of an "
            f"experiment (e.g. primebench sweep {first.experiment} --variant {first.variant} "
            f"--scale {first.scale}{flags} ...); its logged evaluation time "
            "(perf/eval_time_s) then estimates the others on any number of ranks, and its "
            "sampling throughput per device (perf/samples_per_s) its variant at any "
            "task.sample_count"
        )
    _released_lines(jobs, cluster, say)
    for line in (line for item in plan for line in item.unavailable):
        say(f"   left out: {line}")
    for job in jobs:
        est, layout, config = job.estimate, job.layout, job.config
        if layout.max_requeues is None or est.allocations is None:
            continue
        if est.allocations - 1 > layout.max_requeues:
            say(
                f"   warning: {config.experiment}/{config.variant} needs "
                f"{est.allocations} allocations, but profile.max_requeues is "
                f"{layout.max_requeues}: raise it, or the run is given up unfinished"
            )


def _profile_lines(jobs: list[PlannedJob], profiles: JobProfiles, say: Say) -> None:
    """The profile of each kind of job in the plan, and where it comes from."""
    counts = {kind: sum(j.kind.name == kind for j in jobs) for kind in KINDS}
    present = [kind for kind in KINDS if counts[kind]]
    if not present:
        return
    say("profiles, by kind of job:")
    for kind in present:
        say(f"   {kind} ({counts[kind]} job(s)): {profiles.why(kind)}")


def _released_lines(jobs: list[PlannedJob], cluster: str, say: Say) -> None:
    """What a plan of released weights needs: each evaluation splits over its job's ranks
    up to its shards (:mod:`benchmarks.launch.eval_scaling`), and one cut by its time limit
    resumes from its kept shards in the next allocation."""
    released = [j for j in jobs if j.config.weights is not None]
    if not released:
        return
    say(
        f"   {len(released)} run(s) evaluate released weights: no training; each evaluation "
        "splits over its job's ranks (likelihood batches, sampler calls, feature chunks)"
    )
    crowded = [(j, _shards(j)) for j in released if _shards(j) < j.layout.world]
    if crowded:
        flag = "--eval-profile" if cluster == "slurm" else "--profile"
        fewest = min(shards for _, shards in crowded)
        say(
            f"   {len(crowded)} of them sample in fewer sampler calls (as few as {fewest}) "
            f"than their job has ranks, so ranks idle while they sample: {flag} gpu-1x "
            "holds one GPU per job"
        )
    for job in released:
        limit, est = job.layout.timeout_min, job.estimate
        if est.wall_hours and limit and est.wall_hours * 60 > limit:
            say(
                f"   {job.config.experiment}/{job.config.variant}: its evaluation takes "
                f"{est.wall_hours:.1f} h, above the {job.layout.limit()} limit: it resumes "
                f"from its kept shards, in {est.allocations} allocation(s)"
            )


def _shards(job: PlannedJob) -> int:
    """The shards that bound the job's speed-up (its ranks when nothing bounds it)."""
    shards = evaluation_shards(job.config)
    return job.layout.world if shards is None else shards
