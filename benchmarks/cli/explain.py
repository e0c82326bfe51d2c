"""``primebench explain``: resolved settings, each with its meaning, type and default.

The meaning of a field is its attribute docstring (the string literal under it in the
dataclass); type, allowed values and default come from the annotation and the field.
Nested settings (a model's backbone) are shown under their dotted keys, the keys
``--set`` and experiment files use.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from ..config.precision import describe_fastest
from ..config.recipe import card_of, settings
from ..config.run_config import RunConfig
from ..config.yaml_io import yaml_text
from ..registry import MODELS, TASKS

__all__ = ["FieldInfo", "field_docs", "describe", "explain_runs", "explain_entry"]

UNDOCUMENTED = "(undocumented)"


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> attribute docstring, for ``cls`` and its dataclass bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _type_text(tp: Any) -> tuple[str, str]:
    """(type, allowed values) of an annotation, in the words of a YAML file."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "choice", ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_text(a) for a in args if a is not type(None)]
        names = " or ".join(p[0] for p in parts) + (" or null" if type(None) in args else "")
        return names, "; ".join(p[1] for p in parts if p[1])
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return "[" + ", ".join(_type_text(a)[0] for a in args) + "]", ""
        return f"list of {_type_text(args[0])[0] if args else 'values'}", ""
    if dataclasses.is_dataclass(tp):
        return "settings", ""
    return getattr(tp, "__name__", str(tp)), ""


@dataclass(frozen=True)
class FieldInfo:
    """One setting: dotted key, type, allowed values, default, value, meaning."""

    key: str
    type: str
    allowed: str
    default: Any
    value: Any
    doc: str


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        made = f.default_factory()
        return type(made).__name__ if dataclasses.is_dataclass(made) else made
    return "(required)"


def describe(obj: Any, prefix: str) -> list[FieldInfo]:
    """The fields of the dataclass instance ``obj`` (nested ones flattened)."""
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key, value = f"{prefix}.{f.name}" if prefix else f.name, getattr(obj, f.name)
        kind, allowed = _type_text(hints[f.name])
        if dataclasses.is_dataclass(value):
            kind = f"settings ({type(value).__name__})"
        out.append(FieldInfo(key, kind, allowed, _default(f), value, docs.get(f.name, "")))
        if dataclasses.is_dataclass(value):
            out += describe(value, key)
    return out


def _format(
    info: FieldInfo, changed: bool, source: str | None = None, width: int = 96
) -> list[str]:
    mark = "*" if changed else " "
    facts = info.type + (f": {info.allowed}" if info.allowed else "")
    if not dataclasses.is_dataclass(info.value):
        facts += f"; default {yaml_text(info.default)}"
    text = f"[{facts}] {info.doc or UNDOCUMENTED}"
    lines = [f"{mark} {info.key} = {yaml_text(info.value)}"]
    indent = dict(initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
    if source is not None:
        where = dict(initial_indent="    from: ", subsequent_indent="          ")
        lines += textwrap.wrap(source, width, **where, break_on_hyphens=False)
    return lines + textwrap.wrap(text, width, **indent)


def _sections(config: RunConfig) -> list[tuple[str, list[FieldInfo]]]:
    top = [
        FieldInfo("seed", "int", "", 0, config.seed, field_docs(RunConfig).get("seed", "")),
        FieldInfo(
            "plugins", "list of str", "", [], list(config.plugins), field_docs(RunConfig)["plugins"]
        ),
    ]
    sections = [("run", top)]
    for kind, component, registry in (
        ("task", config.task, TASKS),
        ("model", config.model, MODELS),
    ):
        if component is None:
            doc = field_docs(RunConfig)[kind]
            sections.append((kind, [FieldInfo(kind, "settings", "", None, None, doc)]))
            continue
        summary = _summary(registry.get(component.name))
        head = FieldInfo(
            f"{kind}.name",
            "choice",
            ", ".join(registry.names()),
            "(required)",
            component.name,
            summary,
        )
        sections.append((kind, [head, *describe(component.params, kind)]))
    sections.append(("train", describe(config.train, "train")))
    if config.upstream is not None:
        sections.append(("upstream", describe(config.upstream, "upstream")))
    if config.weights is not None:
        sections.append(("weights (released)", describe(config.weights, "weights")))
    return sections


def _summary(entry: type) -> str:
    """The first paragraph of an entry's docstring, else of its module's."""
    doc = entry.__dict__.get("__doc__") or inspect.getmodule(entry).__doc__ or ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def explain_runs(configs: list[RunConfig]) -> str:
    """Every setting of ``configs[0]``, each with its meaning and, for a paper-scale run,
    its source on the recipe card (:mod:`benchmarks.config.recipe`); ``*`` marks the values that
    differ from the default, and the variants' differences are listed first."""
    sources = card_of(configs[0])
    known = settings(configs[0]) if sources is not None else {}
    first = configs[0]
    lines = [
        f"{first.experiment} [{first.variant}] at scale {first.scale}, run id {first.run_id}",
        f"{describe_fastest()}: what a 'fastest' setting becomes",
        "",
    ]
    if len(configs) > 1:
        flat = [
            {i.key: yaml_text(i.value) for _, infos in _sections(c) for i in infos} for c in configs
        ]
        keys = sorted({k for f in flat for k in f if len({g.get(k) for g in flat}) > 1})
        variants = len({c.variant for c in configs})
        runs = f"{len(configs)} runs of " if len(configs) > variants else ""
        plural = "variant" if variants == 1 else "variants"
        lines.append(f"{runs}{variants} {plural}; the settings in which they differ:")
        for config, values in zip(configs, flat, strict=True):
            diff = ", ".join(f"{k}={values.get(k, '-')}" for k in keys)
            lines.append(f"  {config.variant}: {diff}")
        lines += ["", f"the settings of {first.variant} (--variant V for another):", ""]
    for title, infos in _sections(first):
        lines.append(f"{title}:")
        for info in infos:
            changed = not dataclasses.is_dataclass(info.value) and info.value != info.default
            source = None
            if sources is not None and info.key in known:
                entry = sources.get(info.key)
                source = entry.describe() if entry else "no source on the recipe card"
            lines += _format(info, changed and info.default != "(required)", source)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def explain_entry(kind: str, name: str) -> str:
    """The settings of one registered task or model, at their defaults."""
    registry = {"task": TASKS, "model": MODELS}[kind]
    entry = registry.get(name, path=kind)
    lines = [f"{kind} {name}: {_summary(entry)}", ""]
    for info in describe(entry.Params(), kind):
        lines += _format(info, changed=False)
    return "\n".join(lines) + "\n"
