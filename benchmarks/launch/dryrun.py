"""``--dry-run``: list what a sweep or a reproduction would submit, and what it would cost.

Every job is listed (experiment, variant, run id, resources, time limit, its kind and the
profile it gets, the experiments it waits for) with its estimated device-hours and
allocations (see :mod:`benchmarks.launch.estimate`; an evaluation measured on other ranks is
scaled to the job's by :mod:`benchmarks.launch.eval_scaling`). On Slurm each kind of job gets
its own profile (:mod:`benchmarks.launch.job_profiles`): the ``kind`` column says why a job is
of its kind, the ``profile`` column which profile it gets, and the lines under the table
where each kind's profile comes from. The same checks as a submission run first
(profiles, batch split over the ranks, Slurm partition), except that sbatch need not
exist; nothing is submitted and nothing is written, not even an empty tracking store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config.experiments import upstream_config
from ..core import ConfigError
from ..tracking.store import TrackingError, resolve_tracking_uri
from ..tracking.store_reader import StoreReader
from .dryrun_summary import PlannedJob, hours_text, summary
from .estimate import (
    Estimate,
    Layout,
    StepTime,
    estimate,
    measured_eval_time,
    measured_step_time,
)
from .job_kinds import job_kind
from .job_profiles import JobProfiles, choose_profiles, naming_the_flag
from .launcher import LOCAL_TIMEOUT_MIN
from .plan import PlannedExperiment
from .preflight import validate
from .profiles import ClusterProfile
from .sqlite_cluster import check_sqlite_for_slurm

__all__ = ["layout_of", "dry_run"]

_HEADER = (
    "experiment",
    "variant",
    "run id",
    "resources",
    "limit",
    "kind",
    "profile",
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
        st, measured = est.eval_time, est.eval_time.seconds / 3600
        where = f" on {st.world} rank(s)" if st.world and st.world != layout.world else ""
        return f"eval {measured:.3g} h ({st.source}{where})"
    if st is None:
        return "unknown"
    where = f" on {st.world} rank(s)" if st.world and st.world != layout.world else ""
    return f"{st.seconds:.3g} s ({st.source}{where})"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _check(
    plan: Sequence[PlannedExperiment],
    cluster: str,
    profiles: JobProfiles,
    tracking_uri: str | None,
    say: Callable[[str], None],
) -> None:
    """The checks of a submission, each group of jobs against its profile."""
    used = {}
    for item in plan:
        for chosen, configs in profiles.groups(item.configs):
            used[chosen.name, chosen.profile] = chosen
            with naming_the_flag(chosen):
                validate(configs, cluster, chosen.profile, check_sbatch=False)
    if cluster != "slurm":
        return
    for chosen in used.values() or [profiles.training]:
        try:
            check_sqlite_for_slurm(resolve_tracking_uri(tracking_uri), chosen.profile)
        except TrackingError as refused:
            say(f"== warning: the submission would be refused: {refused}")
            return


def dry_run(
    plan: Sequence[PlannedExperiment],
    cluster: str,
    profile: ClusterProfile | None = None,
    *,
    profiles: JobProfiles | None = None,
    tracking_uri: str | None = None,
    step_time: float | None = None,
    say: Callable[[str], None] = print,
) -> list[Estimate]:
    """Print every job of ``plan`` and the estimated cost; return the estimates in order.

    ``profiles``: the profile of each kind of job (default: ``profile`` for training and
    the defaults of :func:`benchmarks.launch.job_profiles.choose_profiles` for the others).
    ``step_time``: seconds per optimizer step on the training layout, for runs without a
    measurement in the tracking store."""
    if step_time is not None and step_time <= 0:
        raise ConfigError(f"--step-time: expected seconds > 0, got {step_time}")
    profiles = profiles or choose_profiles(cluster, profile)
    _check(plan, cluster, profiles, tracking_uri, say)
    main = layout_of(cluster, profiles.main)
    store = StoreReader(tracking_uri)
    given = StepTime(step_time, None, "--step-time") if step_time is not None else None
    rows: list[tuple[str, ...]] = [_HEADER]
    jobs: list[PlannedJob] = []
    for item in plan:
        after = ", ".join([*item.upstream, *(f"{u}*" for u in item.external)]) or "-"
        for config in item.configs:
            kind = job_kind(config)
            chosen = profiles.of(kind.name)
            layout = layout_of(cluster, chosen.profile)
            est = estimate(
                config,
                measured_step_time(store, config) or given,
                layout,
                measured_eval_time(store, config),
            )
            jobs.append(PlannedJob(item.name, config, kind, chosen, layout, est))
            rows.append(
                (
                    config.experiment,
                    config.variant,
                    config.run_id,
                    layout.describe(),
                    layout.limit(),
                    kind.describe(),
                    profiles.label(kind.name),
                    after,
                    f"{est.steps:,}",
                    _step_time_text(est, layout),
                    hours_text(est, layout, main.unit),
                    "?" if est.allocations is None else str(est.allocations),
                )
            )
    units = list(dict.fromkeys([main.unit, *(j.layout.unit for j in jobs)]))
    hours = units[0] if len(units) == 1 else f"{units[0]} ({units[1]} where the row says so)"
    say(
        f"== dry run: {len(jobs)} job(s) of {len(plan)} experiment(s) on {cluster}; "
        f"hours are {hours}, nothing is submitted"
    )
    for line in _table(rows):
        say(line)
    if any(item.upstream for item in plan):
        say("after: the experiments whose jobs these wait for (Slurm: afterok on their array)")
    if any(item.external for item in plan):
        say("* not part of this submission: its runs must be complete before these start")
    summary(jobs, plan, profiles, cluster, main, say)
    _shared_summary(plan, store, given, cluster, profiles, say)
    return [job.estimate for job in jobs]


def _shared_summary(
    plan: Sequence[PlannedExperiment],
    store: StoreReader,
    given: StepTime | None,
    cluster: str,
    profiles: JobProfiles,
    say: Callable[[str], None],
) -> None:
    """The runs that one experiment shares with another: listed once above, their hours
    counted once."""
    shared = [(item.name, v, c) for item in plan for v, c in item.shared]
    if not shared:
        return
    say(f"== shared: {len(shared)} variant(s) that are runs of another experiment here")
    trainings: dict[str, tuple[Estimate, Layout]] = {}
    for name, variant, config in shared:
        # A released-weights run is evaluated, never trained: its own cost is counted.
        evaluated = config.weights is not None or config.upstream is None
        trained = config if evaluated else upstream_config(config)
        layout = layout_of(cluster, profiles.of(job_kind(trained).name).profile)
        est, _ = trainings.setdefault(
            trained.run_id,
            (
                estimate(
                    trained,
                    measured_step_time(store, trained) or given,
                    layout,
                    measured_eval_time(store, trained),
                ),
                layout,
            ),
        )
        via = "" if trained is config else f", evaluating {trained.experiment}/{trained.variant}"
        what = "evaluation" if config.weights is not None else "training"
        say(
            f"   {name}/{variant} is {config.experiment}/{config.variant} [{config.run_id}]"
            f"{via}: {hours_text(est, layout, layout.unit)} {layout.unit} of {what}, "
            "counted once"
        )
    hours = [e.device_hours for e, _ in trainings.values()]
    units = {layout.unit for _, layout in trainings.values()}
    unit = " / ".join(sorted(units))
    text = "unknown" if None in hours else f"{sum(h or 0.0 for h in hours):,.1f}"
    runs = "run(s) of released weights" if shared[0][2].weights else "training run(s)"
    say(f"   their {len(trainings)} {runs}: {text} {unit}, each counted once")
