"""A reproduction on this machine: the plan's stages as pools of local processes, the runs
that did not complete, and the time table printed at its end."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .launcher import launch, launch_local
from .plan import PlannedExperiment, stages
from .pool import span
from .profiles import ClusterProfile
from .submission import LaunchError, print_results, summary

__all__ = [
    "Reproduction",
    "default_parallel",
    "format_time_table",
    "reproduce_in_process",
    "reproduce_locally",
]

Row = tuple[str, int, int, float, float]


def default_parallel(profile: ClusterProfile | None = None) -> int:
    """Two runs at once when the machine has two cores for each rank of both, else one.

    Small CPU models do not keep two cores busy from one process: on 2 cores two
    single-thread runs of the image U-Net train 1.3x the images/s of one run on both
    (``python -m benchmarks.perf.image_train``, one and two threads)."""
    ranks = profile.tasks_per_node if profile else 1
    return 2 if (os.cpu_count() or 1) >= 2 * ranks else 1


def format_time_table(rows: list[Row], total: float) -> str:
    """The wall time of each step of a reproduction: (name, runs, runs already complete,
    wall seconds, run seconds) rows, the wall's share of ``total``, and the total.

    Wall is from a step's first run's start to its last run's end; run seconds add up its
    runs' own times, which exceed the wall when runs overlap (``--parallel``)."""
    head = f"  {'experiment':<16}{'runs':>6}{'skipped':>9}{'wall (s)':>10}{'share':>8}"
    lines = [head + f"{'run (s)':>10}"]
    for name, runs, skipped, seconds, run_seconds in rows:
        share = 100 * seconds / total if total > 0 else 0.0
        lines.append(
            f"  {name:<16}{runs:>6}{skipped:>9}{seconds:>10.0f}{share:>7.0f}%{run_seconds:>10.0f}"
        )
    lines.append(f"  {'total':<16}{'':>6}{'':>9}{total:>10.0f}")
    return "\n".join(lines)


@dataclass
class Reproduction:
    """What a reproduction ran: the time table's rows, and a line for every run that did
    not complete (failed, or not run because an experiment it reads has failed runs)."""

    rows: list[Row] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _blocked(item: PlannedExperiment, failed: set[str]) -> list[str]:
    """Lines for the runs of ``item`` that cannot run: an upstream experiment failed."""
    bad = [u for u in item.upstream if u in failed]
    if not bad:
        return []
    why = f"not run: {', '.join(bad)} has failed runs"
    return [f"{item.name}/{c.variant} [{c.run_id}]: {why}" for c in item.configs]


def reproduce_locally(
    plan: list[PlannedExperiment],
    *,
    profile: ClusterProfile | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    parallel: int = 1,
    if_busy: str = "wait",
) -> Reproduction:
    """Run the plan's stages one after the other, each as one pool of ``--parallel``
    local processes across its experiments.

    A failed run is recorded and the reproduction goes on, less the experiments that read
    a failed experiment's checkpoints. Ctrl-C raises
    :class:`benchmarks.launch.submission.SweepInterrupted` once the running jobs have stopped."""
    done = Reproduction()
    failed: set[str] = set()
    for stage in stages(plan):
        runnable = []
        for item in stage:
            blocked = _blocked(item, failed)
            done.missing += blocked
            if blocked:
                failed.add(item.name)
            else:
                runnable.append(item)
        configs = [c for item in runnable for c in item.configs]
        if not configs:
            continue
        names = ", ".join(f"{item.name} ({len(item.configs)})" for item in runnable)
        print(f"== {names}: {len(configs)} run(s), {parallel} at a time", flush=True)
        outcomes = launch_local(
            configs,
            profile=profile,
            tracking_uri=tracking_uri,
            runs_dir=runs_dir,
            parallel=parallel,
            if_busy=if_busy,
        )
        print_results([o.result for o in outcomes if o.error is None])
        for item in runnable:
            # by run id: a same_as run is named for the experiment it belongs to
            ids = {c.run_id for c in item.configs}
            mine = [o for o in outcomes if o.item.run_id in ids]
            errors = [o for o in mine if o.error is not None]
            done.missing += [
                f"{item.name}/{o.item.variant} [{o.item.run_id}]: failed: {summary(o.error)}"
                for o in errors
            ]
            if errors:
                failed.add(item.name)
            skipped = sum(bool(o.result["skipped"]) for o in mine if o.error is None)
            ran = sum(o.seconds for o in mine)
            done.rows.append((item.name, len(mine), skipped, span(mine), ran))
    return done


def reproduce_in_process(
    plan: list[PlannedExperiment],
    *,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    if_busy: str = "wait",
    post_mortem: bool = False,
) -> Reproduction:
    """Run the plan's experiments one after the other in this process (``--cluster
    debug``); failures are recorded as in :func:`reproduce_locally` (``post_mortem``: a
    failed run opens pdb first, :func:`benchmarks.launch.launcher.launch`)."""
    done = Reproduction()
    failed: set[str] = set()
    for item in plan:  # upstream experiments first
        blocked = _blocked(item, failed)
        done.missing += blocked
        if blocked:
            failed.add(item.name)
            continue
        print(f"== {item.name}: {len(item.configs)} run(s) in this process", flush=True)
        began = time.perf_counter()
        try:
            results = launch(
                item.configs,
                "debug",
                tracking_uri=tracking_uri,
                runs_dir=runs_dir,
                if_busy=if_busy,
                post_mortem=post_mortem,
            )
        except LaunchError as err:
            done.missing.append(f"{item.name}: {err}")
            failed.add(item.name)
            results = []
        print_results(results)
        seconds = time.perf_counter() - began
        skipped = sum(bool(r["skipped"]) for r in results)
        done.rows.append((item.name, len(item.configs), skipped, seconds, seconds))
    return done
