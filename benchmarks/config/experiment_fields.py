"""Checks of two fields of an experiment file: ``reproduce`` (the scales and variants a
reproduction runs) and ``seeds`` (one run per training seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import ConfigError
from .run_config import SCALES

__all__ = ["reproduce_field", "training_seeds"]


def training_seeds(merged: dict[str, Any], overrides: dict[str, Any], where: str) -> list[int]:
    """The run seeds of one variant: ``seeds`` (a list: one run each, same variant name,
    so that the paired report compares across them) unless ``--set seed=N`` picks one;
    else ``seed``. ``seeds`` is removed from ``merged``."""
    seeds = merged.pop("seeds", None)
    if seeds is None or "seed" in overrides:
        return [merged.get("seed", 0)]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ConfigError(
            f"{where}: seeds: expected a non-empty list of distinct integers, got {seeds!r}"
        )
    return seeds


def reproduce_field(
    value: Any, variants: dict[str, Any], path: Path
) -> dict[str, tuple[str, ...] | None]:
    """The ``reproduce`` field: a list of scales (every variant) or scale -> variants."""
    if value is None:
        return {}
    if isinstance(value, list):
        value = dict.fromkeys(value)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"{path}: reproduce: expected a list of scales or a mapping of scale -> "
            f"variants, got {value!r}"
        )
    out: dict[str, tuple[str, ...] | None] = {}
    for scale, chosen in value.items():
        if scale not in SCALES:
            raise ConfigError(
                f"{path}: reproduce: unknown scale {scale!r}; valid: {', '.join(SCALES)}"
            )
        if chosen is None:
            out[scale] = None
            continue
        if not isinstance(chosen, list) or not chosen or any(v not in variants for v in chosen):
            raise ConfigError(
                f"{path}: reproduce.{scale}: expected a non-empty list of this file's "
                f"variants ({', '.join(variants)}), got {chosen!r}"
            )
        out[scale] = tuple(chosen)
    return out
