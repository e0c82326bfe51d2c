"""A reproduction on this machine: the plan's stages as pools of local processes, and the
time table printed at its end."""

from __future__ import annotations

import os
from pathlib import Path

from .launch import launch_local, raise_failures
from .pool import span
from .profiles import ClusterProfile
from .submission import PlannedExperiment, stages
from .submitted import print_results

__all__ = ["default_parallel", "format_time_table", "reproduce_locally"]

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


def reproduce_locally(
    plan: list[PlannedExperiment],
    *,
    profile: ClusterProfile | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    parallel: int = 1,
    if_busy: str = "wait",
) -> list[Row]:
    """Run the plan's stages one after the other, each as one pool of ``--parallel``
    local processes across its experiments; the time table's rows of each experiment.
    Every run of a stage is attempted before its failures are raised together."""
    rows: list[Row] = []
    for stage in stages(plan):
        configs = [c for item in stage for c in item.configs]
        names = ", ".join(f"{item.name} ({len(item.configs)})" for item in stage)
        print(f"== {names}: {len(configs)} run(s), {parallel} at a time", flush=True)
        outcomes = launch_local(
            configs,
            profile=profile,
            tracking_uri=tracking_uri,
            runs_dir=runs_dir,
            parallel=parallel,
            if_busy=if_busy,
        )
        raise_failures(outcomes)
        print_results([o.result for o in outcomes])
        for item in stage:
            mine = [o for o in outcomes if o.item.experiment == item.name]
            skipped = sum(bool(o.result["skipped"]) for o in mine)
            ran = sum(o.seconds for o in mine)
            rows.append((item.name, len(mine), skipped, span(mine), ran))
    return rows
