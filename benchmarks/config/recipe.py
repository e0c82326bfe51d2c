"""Recipe cards: where each setting of a paper-scale run comes from.

An experiment file's ``recipe:`` section names, for every setting of its runs, the
source that fixes it:

    recipe:
      defaults:                       # for every variant
        train.lr: {source: "mdm-prime image/arg_parser.py:44-47 (--lr)", value: 0.0001}
        task.eval_batch: {execution: "images per network call: changes no number"}
      variants:                       # per variant, over the defaults
        cifar10-l2:
          train.steps: {source: "...: 4,250 epochs x 97 steps", value: 412250}

Each entry is one of

* ``{source: TEXT, value: V}``: the paper, a file and line range of the authors' code, or a
  row of their README, and the value it gives; a test holds the setting to V;
* ``{deviation: TEXT, source: TEXT, value: V}``: the source gives V and the suite does
  otherwise on purpose (TEXT says why);
* ``{suite: TEXT}``: the sources are silent; the suite's choice, and why;
* ``{execution: TEXT}``: a setting that changes how a run executes, not what it computes.

A plain string is short for ``{source: TEXT}`` without a checked value. Keys are the dotted
keys of ``primebench explain`` and ``--set``. :func:`problems` lists what a card lacks or
gets wrong; :func:`render_cards` writes all paper-scale cards as one markdown page.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..core import ConfigError
from .experiments import EXPERIMENTS_DIR, Experiment, list_experiments, load_experiment
from .recipe_tables import table_entry
from .run_config import RunConfig
from .yaml_io import load_yaml, yaml_text

__all__ = ["Entry", "KINDS", "card", "card_of", "problems", "settings", "render_cards"]

KINDS = ("source", "deviation", "suite", "execution")
_NO_VALUE = object()


@dataclass(frozen=True)
class Entry:
    """Where one setting comes from (see the module docstring for the kinds)."""

    kind: str
    text: str
    source: str = ""
    value: Any = _NO_VALUE
    own: bool = False  # written for this variant (not shared defaults)

    @property
    def checked(self) -> bool:
        return self.value is not _NO_VALUE

    def describe(self) -> str:
        if self.kind == "source":
            return self.text
        if self.kind == "deviation":
            return f"deviation: {self.text} (source: {self.source}, gives {yaml_text(self.value)})"
        return f"{'suite' if self.kind == 'suite' else 'execution only'}: {self.text}"


def _entry(raw: Any, where: str) -> Entry:
    if isinstance(raw, str):
        return Entry("source", raw)
    keys = set(raw) if isinstance(raw, dict) else set()
    if "deviation" in keys:
        kind, allowed = "deviation", {"deviation", "source", "value"}
    elif "source" in keys:
        kind, allowed = "source", {"source", "value"}
    else:
        kind = next(iter(keys)) if len(keys) == 1 else ""
        allowed = {kind}
    if kind not in KINDS or keys - allowed:
        raise ConfigError(
            f"{where}: expected a source string, or a mapping with one of "
            f"{', '.join(KINDS)} (source and deviation may add value), got {raw!r}"
        )
    if kind == "deviation" and not {"source", "value"} <= keys:
        raise ConfigError(f"{where}: a deviation names its source and the value it gives")
    return Entry(kind, str(raw[kind]), str(raw.get("source", "")), raw.get("value", _NO_VALUE))


def card(experiment: Experiment, config: RunConfig) -> dict[str, Entry]:
    """The entries of ``config``'s variant: the shared cards its recipe names (``base``),
    the recipe's defaults, then the variant's own; ``{table: NAME}`` entries are looked up
    in that table of the authors' settings for this config
    (:mod:`benchmarks.config.recipe_tables`)."""
    recipe = experiment.recipe or {}
    where = f"{experiment.path.name}: recipe"
    unknown = set(recipe) - {"base", "defaults", "variants"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    variants = recipe.get("variants") or {}
    stray = set(variants) - set(experiment.variants)
    if stray:
        raise ConfigError(f"{where}.variants: no such variant(s) {', '.join(sorted(stray))}")
    bases = recipe.get("base") or []
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{where}.base: expected a list of shared card names, got {bases!r}")
    parts = [(f"base {name}", shared_card(name)) for name in bases]
    parts += [("defaults", recipe.get("defaults")), (config.variant, variants.get(config.variant))]
    out = {}
    for part, raw in parts:
        for key, value in (raw or {}).items():
            if isinstance(value, dict) and set(value) == {"table"}:
                out[key] = Entry(**table_entry(str(value["table"]), key, config))
            else:
                out[key] = _entry(value, f"{where}.{part}.{key}")
            if part == config.variant:
                out[key] = dataclasses.replace(out[key], own=True)
    return out


def card_of(config: RunConfig) -> dict[str, Entry] | None:
    """The card of a paper-scale run of a built-in experiment with a recipe, else None."""
    if config.scale != "paper":
        return None
    try:
        experiment = load_experiment(config.experiment)
    except ConfigError:  # an experiment file outside the built-in ones
        return None
    return card(experiment, config) if experiment.recipe else None


def shared_card(name: str) -> dict[str, Any]:
    """The entries of ``experiments/recipes/NAME.yaml``, shared by several experiments."""
    path = EXPERIMENTS_DIR / "recipes" / f"{name}.yaml"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"recipe base: no shared card {name!r}; valid: {valid}")
    raw = load_yaml(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of setting -> source")
    return raw


def settings(config: RunConfig) -> dict[str, Any]:
    """Dotted key -> value of every setting of ``config`` (nested settings flattened; no
    training settings for an evaluation-only run)."""
    out: dict[str, Any] = {"seed": config.seed}

    def walk(prefix: str, obj: Any) -> None:
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(f"{prefix}.{f.name}", value)
            else:
                out[f"{prefix}.{f.name}"] = value

    for kind, component in (("task", config.task), ("model", config.model)):
        if component is not None:
            out[f"{kind}.name"] = component.name
            walk(kind, component.params)
    if config.model is not None:  # an evaluation-only run trains nothing
        walk("train", config.train)
    if config.upstream is not None:
        walk("upstream", config.upstream)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def problems(config: RunConfig, entries: dict[str, Entry]) -> list[str]:
    """What the card of ``config`` lacks or contradicts: a setting without an entry, an
    entry for no setting, a checked value the setting does not have, a deviation that
    does not deviate."""
    values = settings(config)
    name = f"{config.experiment}/{config.variant}"
    out = [f"{name}: {key} = {yaml_text(v)} has no source" for key, v in values.items()]
    out = [line for line, key in zip(out, values, strict=True) if key not in entries]
    for key, entry in entries.items():
        if key not in values:
            if entry.own:  # shared entries may name settings other variants have
                out.append(f"{name}: the card names {key}, which is no setting")
        elif entry.kind == "source" and entry.checked and not _same(values[key], entry.value):
            out.append(
                f"{name}: {key} = {yaml_text(values[key])}, but its source "
                f"({entry.text}) gives {yaml_text(entry.value)} and no deviation is written"
            )
        elif entry.kind == "deviation" and _same(values[key], entry.value):
            out.append(f"{name}: {key} is written as a deviation but equals its source")
    return out


def paper_experiments() -> list[Experiment]:
    """The experiments ``primebench reproduce --scale paper`` runs."""
    experiments = [load_experiment(n) for n in list_experiments()]
    return [e for e in experiments if "paper" in e.reproduce]


def render_cards(scale: str = "paper") -> str:
    """Every card of the experiments reproduced at ``scale``: per variant a table of
    setting, value and source (a ``same_as`` variant points at its run's card)."""
    lines = [
        "# Recipe cards",
        "",
        "Every setting of every run `primebench reproduce --scale paper` submits, with its "
        "source: the paper, a file and line range of the authors' code (chen-hao-chao/"
        "mdm-prime at 17b9489; kuleshov-group/mdlm, kuleshov-group/bd3lms), a row of their "
        "README, or the suite's own choice and why. A deviation says what the source gives. "
        "`primebench explain EXPERIMENT --scale paper --variant V` prints the same beside "
        "each setting's meaning.",
    ]
    for exp in (e for e in paper_experiments() if scale in e.reproduce):
        lines += ["", f"## {exp.name}", "", exp.description, ""]
        for variant in exp.reproduced(scale) or list(exp.variants):
            if variant in exp.shared:
                other = "/".join(exp.shared[variant])
                lines += [f"### {exp.name}/{variant}", "", f"The run of {other}: its card.", ""]
                continue
            (config, *_) = exp.resolve(scale, None, [variant])
            entries = card(exp, config)
            lines += [f"### {exp.name}/{variant} (run {config.run_id})", ""]
            lines += ["| setting | value | source |", "|---|---|---|"]
            for key, value in settings(config).items():
                entry = entries.get(key)
                source = entry.describe() if entry else "**no source**"
                lines.append(f"| `{key}` | {yaml_text(value)} | {source.replace('|', '/')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
