"""Runs that share a task, a variant name and a seed but not a configuration.

Rows and paired comparisons know a run by its variant and its seed. Two runs of one
(task, variant, seed) are two trainings that the name cannot tell apart: the same
variant started again with other ``--set`` overrides or an edited experiment file, or
two experiments with a variant of the same name. A report never merges them or pairs
one of them in the other's place: each keeps its own row, named by its run id and the
settings in which the runs differ (:func:`differences`), a paired comparison that would
need to choose between them says so instead of a verdict, and the index lists them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping

from ..config.run_config import RunConfig, flatten

__all__ = ["conflicts", "differences", "describe", "twins"]

Key = tuple[str, str, int]
SHOWN = 4  # differing settings named per run; the rest are counted


def _key(cfg: RunConfig) -> Key:
    return cfg.task.name, cfg.variant, cfg.seed


def conflicts(configs: Mapping[str, RunConfig]) -> dict[Key, list[str]]:
    """(task, variant, seed) -> the MLflow run ids of the several runs that share it, for
    every such key with more than one run, in the order of ``configs``."""
    groups: dict[Key, list[str]] = defaultdict(list)
    for mlflow_run_id, cfg in configs.items():
        groups[_key(cfg)].append(mlflow_run_id)
    return {key: ids for key, ids in groups.items() if len(ids) > 1}


def twins(configs: Mapping[str, RunConfig], cfg: RunConfig) -> list[RunConfig]:
    """The configs among ``configs`` of ``cfg``'s (task, variant, seed), itself included."""
    return [c for c in configs.values() if _key(c) == _key(cfg)]


def _flat(cfg: RunConfig) -> dict[str, str]:
    """Dotted key -> JSON value of the settings that make the run id."""
    return {key: json.dumps(value) for key, value in flatten(cfg.math_dict()).items()}


def differences(group: list[RunConfig]) -> list[str]:
    """For each config of ``group`` (in order), ``key=value`` of the settings that not
    every config of the group shares (a setting one of them lacks shows as ``-``)."""
    flat = [_flat(c) for c in group]
    keys = sorted(set().union(*flat))
    differing = [k for k in keys if len({f.get(k, "-") for f in flat}) > 1]
    shown, rest = differing[:SHOWN], len(differing) - SHOWN
    more = [f"{rest} more"] if rest > 0 else []
    return [", ".join([*(f"{k}={f.get(k, '-')}" for k in shown), *more]) for f in flat]


def describe(cfg: RunConfig, group: list[RunConfig]) -> str:
    """``run <id>: <settings>``: how ``cfg`` differs from the rest of its group."""
    at = next((i for i, c in enumerate(group) if c is cfg), None)
    if at is None:
        group, at = [cfg, *group], 0
    diff = differences(group)[at]
    return f"run {cfg.run_id}" + (f": {diff}" if diff else ": the same settings")
