"""YAML as the experiment files and ``--set`` overrides read it.

PyYAML follows YAML 1.1, whose float pattern needs a dot in the mantissa and a sign in
the exponent: ``1e-5`` loads as the string ``'1e-5'`` and ``1.0e5`` as a string too.
The loader here takes YAML 1.2's pattern, so every number a person writes as a number
(``1e-5``, ``3E4``, ``.5``, ``-2.5e+3``) loads as a float; ``.inf`` and ``.nan`` stay.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["load_yaml", "yaml_problem", "yaml_text"]

_FLOAT_1_2 = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    pass


# Integers are resolved first (PyYAML tries resolvers in the order they were added for a
# leading character), so "100" stays an int and only what int does not match is a float.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML text with YAML 1.2's numbers (see the module docstring)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where (line and column)."""
    problem = getattr(err, "problem", None) or " ".join(str(err).split())
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return problem
    where = f"column {mark.column + 1}"
    return f"{problem} at line {mark.line + 1}, {where}" if mark.line else f"{problem} at {where}"


def yaml_text(value: Any) -> str:
    """A setting's value as a YAML file writes it (null, true, [a, b]); a nested settings
    dataclass by its class name."""
    if hasattr(value, "__dataclass_fields__"):
        return type(value).__name__
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return str(value)
