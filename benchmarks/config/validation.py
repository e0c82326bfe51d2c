"""Typed values from YAML: checks that name the field and what was expected.

:func:`build_dataclass` turns a mapping into a (frozen) dataclass, checking each value
against its annotation (Literal, unions, tuples, lists, nested dataclasses, bool / int /
float / str) and rejecting unknown keys with the list of valid ones. A float must be
finite: no setting of the suite gives NaN or inf a meaning, and either would only surface
inside a run as a NaN loss or a failing library call. A field whose metadata holds a
:class:`Range` (``field(metadata=within(...))``) must lie in it (every number of a tuple
field), so that a value outside fails here, naming the field and the range, rather than
inside the job.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from ..core import ConfigError

__all__ = ["Range", "build_dataclass", "coerce", "within"]

RANGE_KEY = "primebench.range"


@dataclass(frozen=True)
class Range:
    """The allowed values of a number: ``low`` and ``high`` (None: unbounded), each
    included unless ``*_open``; ``why`` says what breaks outside."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def __str__(self) -> str:
        low, high = _show(self.low), _show(self.high)
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {high}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def holds(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )

    def check(self, value: Any, path: str) -> None:
        """ConfigError naming ``path`` and this range unless ``value`` (a number, each
        number of a tuple or list, or None) lies in it."""
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                self.check(item, f"{path}[{i}]")
            return
        if value is not None and not self.holds(value):
            interval = self.low is not None and self.high is not None
            why = f" ({self.why})" if self.why else ""
            raise ConfigError(f"{path}: must be {'in ' * interval}{self}, got {value!r}{why}")


def within(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    why: str = "",
) -> dict[str, Range]:
    """Field metadata giving the allowed range of a number field (see :class:`Range`)."""
    return {RANGE_KEY: Range(low, high, low_open, high_open, why)}


def _show(bound: float | None) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{path}: expected one of {allowed}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {' / '.join(errors)}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
            items = [
                coerce(v, a, f"{path}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            inner = args[0] if args else Any
            items = [coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer past float's range
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {_type_name(tp)}")


def build_dataclass(cls: type, values: Any, path: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, naming the field of any error."""
    if isinstance(values, cls):
        return values
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; valid settings: "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in values:
            limits = f.metadata.get(RANGE_KEY)
            try:
                kwargs[name] = coerce(values[name], hints[name], sub)
            except ConfigError as err:
                if limits is None:
                    raise
                raise ConfigError(f"{err} (allowed: {limits})") from None
            if limits is not None:
                limits.check(kwargs[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required setting is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{path}: {err}") from None
