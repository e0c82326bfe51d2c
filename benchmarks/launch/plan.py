"""Submitting several experiments at once, in dependency order.

An experiment whose task reads another experiment's checkpoints names it in its
``upstream:`` section (``upstream.experiment``: table2 reads table1's, nfe-sweep
ell-sweep's), and
a fine-tuned run names its starting point in ``train.init_from`` (table1-hybrid starts
from table1's MDLM).
:func:`plan_experiments` orders a set of experiments so that every upstream experiment
comes first, and :func:`submit_plan` submits them all without waiting: on Slurm each
downstream job array waits for its upstream arrays (``afterok``), so a whole scale is
queued in one command. An upstream experiment outside the set is not waited for; its
runs must be complete already (the downstream task names the missing run otherwise).
Each job gets the profile of its kind (:mod:`benchmarks.launch.job_profiles`): an experiment
whose jobs get different profiles is submitted as one array per profile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.experiments import Experiment, list_experiments, load_experiment
from ..config.run_config import RunConfig
from ..config.weights_section import NoReleasedWeights
from ..core import ConfigError
from ..tracking.store import resolve_tracking_uri
from .job_profiles import JobProfiles, choose_profiles, naming_the_flag
from .launcher import submit
from .preflight import validate
from .profiles import ClusterProfile
from .sqlite_cluster import check_sqlite_for_slurm
from .submission import Submission

__all__ = ["PlannedExperiment", "upstream_of", "plan_experiments", "stages", "submit_plan"]

UPSTREAM_FIELD = "upstream.experiment"


@dataclass(frozen=True)
class PlannedExperiment:
    """One experiment of a plan, with the experiments it needs."""

    name: str
    configs: list[RunConfig]
    upstream: tuple[str, ...] = ()  # upstream experiments of this plan: waited for
    external: tuple[str, ...] = ()  # upstream experiments outside it: must be complete
    shared: tuple[tuple[str, RunConfig], ...] = ()  # (variant, the run it is) run by another
    unavailable: tuple[str, ...] = ()  # released weights: variants the authors published none of


def upstream_of(configs: Sequence[RunConfig]) -> list[str]:
    """The experiments whose checkpoints ``configs`` read (``upstream.experiment``,
    ``train.init_from`` for fine-tuned runs, and a ``task.judge`` of run:<experiment>/<variant>
    that scores the samples)."""
    trained = [c for c in configs if c.weights is None]  # released weights read no run
    names = {c.upstream.experiment for c in trained if c.upstream is not None}
    names |= {c.train.init_source[0] for c in trained if c.train.init_source is not None}
    judges = [getattr(c.task.params, "judge_run", None) for c in configs]
    names |= {judge[0] for judge in judges if judge is not None}  # released weights too
    return sorted(n for n in names if isinstance(n, str) and n)


def _order(names: list[str], needs: dict[str, list[str]]) -> list[str]:
    """``names`` with every upstream experiment before its users, otherwise as given."""
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name) :] + [name])
            raise ConfigError(
                f"{UPSTREAM_FIELD}: experiments depend on each other in a cycle: {cycle}"
            )
        visiting.append(name)
        for upstream in needs[name]:
            if upstream in needs:
                visit(upstream)
        visiting.pop()
        done.append(name)

    for name in names:
        visit(name)
    return done


def plan_experiments(
    names: Sequence[str],
    scale: str,
    overrides: dict[str, Any] | None = None,
    variants: list[str] | None = None,
    *,
    reproduction: bool = False,
    weights: str = "trained",
) -> list[PlannedExperiment]:
    """Resolve ``names`` at ``scale`` and order them upstream first (ConfigError on an
    unknown upstream experiment or a cycle). ``variants`` applies to a single name only;
    a ``reproduction`` takes each experiment's variants of its ``reproduce`` field.
    ``weights="released"``: every run evaluates its variant's released weights; a variant
    the authors published none of is left out and named in ``unavailable`` (unless
    ``variants`` asked for it)."""
    if variants and len(names) != 1:
        raise ConfigError("--variant: selects variants of one experiment only")
    known = set(list_experiments())
    resolved, unavailable = {}, {}
    for name in names:
        exp = load_experiment(name)
        chosen = exp.reproduced(scale) if reproduction else variants
        if weights == "released" and not variants:
            resolved[name], unavailable[name] = _released(exp, scale, overrides, chosen)
        else:
            resolved[name] = exp.resolve(scale, overrides, chosen, weights)
    shared = _share_runs(resolved, {n: load_experiment(n).shared for n in resolved})
    # A run that reads a checkpoint of its own experiment (a fine-tune of a sibling variant)
    # is no dependency between experiments: it names the missing run if it starts first.
    needs = {n: [u for u in upstream_of(configs) if u != n] for n, configs in resolved.items()}
    for name, upstream in needs.items():
        unknown = [u for u in upstream if u not in known]
        if unknown:
            raise ConfigError(
                f"{name}: {UPSTREAM_FIELD}: expected one of {', '.join(sorted(known))}, "
                f"got {', '.join(unknown)}"
            )
    return [
        PlannedExperiment(
            name=name,
            configs=resolved[name],
            upstream=tuple(u for u in needs[name] if u in resolved),
            external=tuple(u for u in needs[name] if u not in resolved),
            shared=shared[name],
            unavailable=tuple(unavailable.get(name, ())),
        )
        for name in _order(list(names), needs)
    ]


def _released(
    exp: Experiment, scale: str, overrides: dict[str, Any] | None, chosen: list[str] | None
) -> tuple[list[RunConfig], list[str]]:
    """The released-weights runs of ``exp``'s variants, and a line for each variant that
    has no released weights."""
    configs, missing = [], []
    for variant in chosen or list(exp.variants):
        try:
            configs += exp.resolve(scale, overrides, [variant], "released")
        except NoReleasedWeights as none:
            missing.append(str(none))
    return configs, missing


def _share_runs(
    resolved: dict[str, list[RunConfig]], aliases: dict[str, dict[str, tuple[str, str]]]
) -> dict[str, tuple[tuple[str, RunConfig], ...]]:
    """Drop from ``resolved`` (in place) each run that a ``same_as`` variant names when
    its own experiment plans it too, and every repeat of a run id: a run is submitted
    once. Returns, per experiment, (variant, run) of the runs it left to others."""
    shared: dict[str, tuple[tuple[str, RunConfig], ...]] = {}
    seen: set[str] = set()
    own_ids = {
        name: {c.run_id for c in configs if c.experiment == name}
        for name, configs in resolved.items()
    }
    for name, configs in resolved.items():
        alias = {target: variant for variant, target in aliases[name].items()}
        kept, left = [], []
        for config in configs:
            variant = alias.get((config.experiment, config.variant))
            elsewhere = own_ids.get(config.experiment, set())
            runs_elsewhere = variant is not None and config.run_id in elsewhere
            if runs_elsewhere or config.run_id in seen:
                left.append((variant or config.variant, config))
                continue
            seen.add(config.run_id)
            kept.append(config)
        resolved[name] = kept
        shared[name] = tuple(left)
    return shared


def stages(plan: Sequence[PlannedExperiment]) -> list[list[PlannedExperiment]]:
    """``plan`` cut into stages that can run at the same time: an experiment's stage is one
    after the latest stage of its upstream experiments in the plan (order kept within)."""
    depth: dict[str, int] = {}
    for item in plan:  # upstream first (plan_experiments)
        depth[item.name] = 1 + max((depth[u] for u in item.upstream), default=-1)
    grouped: list[list[PlannedExperiment]] = [
        [] for _ in range(max(depth.values(), default=-1) + 1)
    ]
    for item in plan:
        grouped[depth[item.name]].append(item)
    return grouped


def submit_plan(
    plan: Sequence[PlannedExperiment],
    cluster: str,
    *,
    profile: ClusterProfile | None = None,
    profiles: JobProfiles | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    if_busy: str = "wait",
    say: Callable[[str], None] = print,
) -> dict[str, Submission]:
    """Submit every experiment of ``plan`` in order without waiting; Slurm arrays wait
    for their upstream arrays. Everything is validated before the first submission.

    ``profiles``: the profile of each kind of job (default: ``profile`` for training, the
    defaults of :func:`benchmarks.launch.job_profiles.choose_profiles` for the others). On Slurm
    an experiment whose jobs get different profiles is one array per profile, each
    waiting for all of its upstream experiments' arrays; its :class:`Submission` holds
    the jobs of all of them. ``if_busy``: as for :func:`benchmarks.launch.launcher.submit`."""
    slurm = cluster == "slurm"
    if not slurm and any(item.upstream for item in plan):
        raise ConfigError(
            f"--cluster {cluster}: jobs cannot wait for other jobs; run the experiments one "
            "after the other (benchmarks.launch.launcher.launch) or use --cluster slurm"
        )
    profiles = profiles or choose_profiles(cluster, profile)
    groups = {item.name: profiles.groups(item.configs) for item in plan}
    used = {(c.name, c.profile): c for g in groups.values() for c, _ in g}
    if slurm:  # first: it needs no config, and no config can lift it
        for chosen in used.values() or [profiles.training]:
            check_sqlite_for_slurm(resolve_tracking_uri(tracking_uri), chosen.profile)
    for item in plan:
        for chosen, configs in groups[item.name]:
            with naming_the_flag(chosen):
                validate(configs, cluster, chosen.profile)
    submissions: dict[str, Submission] = {}
    arrays: dict[str, list[str]] = {}
    for item in plan:
        if not item.configs:
            say(f"== {item.name}: every run is another experiment's ({_shared_text(item)})")
            continue
        after = [j for u in item.upstream for j in submissions[u].job_ids] if slurm else []
        parts = []
        for chosen, configs in groups[item.name]:
            sub = submit(
                configs,
                cluster,
                profile=chosen.profile,
                tracking_uri=tracking_uri,
                runs_dir=runs_dir,
                after=after or None,
                if_busy=if_busy,
            )
            parts.append((chosen, sub))
        submissions[item.name] = Submission(
            [c for _, sub in parts for c in sub.configs],
            [j for _, sub in parts for j in sub.jobs],
            cluster,
            parts[0][1].folder,
        )
        arrays[item.name] = [sub.array_id for _, sub in parts]
        line = f"== {item.name}: {len(submissions[item.name].jobs)} job(s) on {cluster}"
        if slurm:
            line += ", " + ", ".join(
                f"job array {sub.array_id} ({sub.job_ids[0]} .. {sub.job_ids[-1]})"
                + (f" with profile {chosen.name}" if len(used) > 1 else "")
                for chosen, sub in parts
            )
        if item.upstream and slurm:
            waited = ", ".join(f"{u} [{', '.join(arrays[u])}]" for u in item.upstream)
            line += f", after {waited} succeed"
        for name in item.external:
            line += f"; needs the complete runs of {name} (not submitted now)"
        if item.shared:
            line += f"; shared: {_shared_text(item)}"
        say(line)
    return submissions


def _shared_text(item: PlannedExperiment) -> str:
    return ", ".join(f"{v} is {c.experiment}/{c.variant}" for v, c in item.shared)
