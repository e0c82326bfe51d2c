"""Merging config mappings: ``deep_merge``, ``--set`` overrides, and grids of variants.

``deep_merge(base, override)`` merges mappings key by key (a mapping merges into a mapping,
anything else replaces); ``parse_overrides`` turns ``--set a.b=1`` items into such a
mapping; ``expand_grid`` multiplies each variant by the product of a grid's axes.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from ..core import ConfigError
from .yaml_io import load_yaml

__all__ = ["deep_merge", "expand_grid", "nested", "parse_overrides"]


def deep_merge(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def nested(dotted: str, value: Any, where: str) -> dict[str, Any]:
    """``"a.b", 1`` -> ``{"a": {"b": 1}}``."""
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"{where}: {dotted!r} is not a dotted key such as train.steps")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> nested mapping; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.steps=100")
        value = load_yaml(raw) if raw.strip() else ""
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set twice")
        node[parts[-1]] = value
    return out


def _point_name(point: dict[str, Any]) -> str:
    parts = []
    for key, value in point.items():
        leaf = key.rsplit(".", 1)[-1]
        if isinstance(value, bool):
            parts.append(leaf if value else f"no_{leaf}")
        else:
            parts.append(f"{leaf}{value}")
    return "-".join(parts)


def expand_grid(
    variants: dict[str, dict[str, Any]], grid: dict[str, Any], where: str, named: bool
) -> dict[str, dict[str, Any]]:
    """Each variant times each combination of the grid's axes (dotted key -> values).

    ``named``: the variants were written in the file (their names prefix the points')."""
    if not grid:
        return variants
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: grid must map dotted keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid.{key}: expected a non-empty list, got {values!r}")
    out: dict[str, dict[str, Any]] = {}
    for variant, overrides in variants.items():
        for combination in itertools.product(*grid.values()):
            point = dict(zip(grid, combination, strict=True))
            merged = copy.deepcopy(overrides)
            for key, value in point.items():
                merged = deep_merge(merged, nested(key, value, f"{where}: grid"))
            name = f"{variant}-{_point_name(point)}" if named else _point_name(point)
            if name in out:
                raise ConfigError(f"{where}: grid point {name!r} occurs twice")
            out[name] = merged
    return out
