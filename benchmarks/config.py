"""Typed run configurations, experiment files, overrides and run ids.

An experiment file (YAML, under ``benchmarks/experiments/``) describes a sweep:

    description: ...
    reproduce: [cpu]            # scales at which `primebench reproduce` runs it
    defaults:                   # shared by every variant
      seed: 0
      task: {name: toy2d, ...}  # name + the task's parameters
      model: {name: prime, ...} # name + the model's parameters (or null)
      train: {steps: 1500, ...}
    scales:                     # per-scale overrides, deep-merged over defaults
      cpu: {...}
      paper: {...}
    variants:                   # one run each, deep-merged last
      mdm: {model: {ell: 1}}

``resolve`` merges defaults <- scales[scale] <- variants[v] <- ``--set`` overrides and
validates the result into a :class:`RunConfig`; task and model parameters are checked
against the dataclasses their registry entries declare. The run id is a hash of the
resolved configuration, stable across processes and machines.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .resources import experiments_dir
from .train_config import TrainConfig
from .validation import ConfigError, build_dataclass, coerce, require_at_least

__all__ = [
    "ConfigError",
    "TrainConfig",
    "ComponentConfig",
    "RunConfig",
    "Experiment",
    "EXPERIMENTS_DIR",
    "SCALES",
    "list_experiments",
    "load_experiment",
    "parse_overrides",
    "build_dataclass",
    "require_at_least",
]

EXPERIMENTS_DIR = experiments_dir()
SCALES = ("cpu", "paper")


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ComponentConfig:
    """A registry entry by name and its validated parameters (a dataclass instance)."""

    name: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.params)}


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run: the unit of tracking, checkpointing and launching."""

    experiment: str
    variant: str
    scale: Literal["cpu", "paper"]
    seed: int
    task: ComponentConfig
    model: ComponentConfig | None
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "scale": self.scale,
            "seed": self.seed,
            "task": self.task.to_dict(),
            "model": None if self.model is None else self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
        }

    @property
    def run_id(self) -> str:
        """12 hex digits of sha256 over the canonical JSON of the resolved config, less
        the execution settings (:attr:`TrainConfig.EXECUTION_FIELDS`)."""
        math = {**self.to_dict(), "train": self.train.math_dict()}
        text = json.dumps(math, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def flat_params(self) -> dict[str, str]:
        """Dotted keys -> string values, for MLflow params."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, sub)
            else:
                out[prefix] = json.dumps(value) if isinstance(value, list | tuple) else str(value)

        walk("", self.to_dict())
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Validate a merged mapping (the inverse of :meth:`to_dict`)."""
        from .registry import MODELS, TASKS

        raw = copy.deepcopy(raw)
        allowed = {"experiment", "variant", "scale", "seed", "task", "model", "train"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            valid = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown top-level setting(s) {', '.join(unknown)}; valid: {valid}")
        for key in ("experiment", "variant", "scale", "task"):
            if key not in raw:
                raise ConfigError(f"{key}: required setting is missing")
        scale = coerce(raw["scale"], Literal["cpu", "paper"], "scale")
        task = _component(raw["task"], TASKS, "task")
        model = None if raw.get("model") is None else _component(raw["model"], MODELS, "model")
        return cls(
            experiment=coerce(raw["experiment"], str, "experiment"),
            variant=coerce(raw["variant"], str, "variant"),
            scale=scale,
            seed=coerce(raw.get("seed", 0), int, "seed"),
            task=task,
            model=model,
            train=build_dataclass(TrainConfig, raw.get("train"), "train"),
        )


def _component(raw: Any, registry: Any, path: str) -> ComponentConfig:
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{path}: expected a mapping with a 'name', got {raw!r}")
    params = dict(raw)
    name = params.pop("name")
    entry = registry.get(name, path=f"{path}.name")
    return ComponentConfig(name=name, params=build_dataclass(entry.Params, params, path))


# --------------------------------------------------------------------------- experiments


def deep_merge(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> nested mapping; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.steps=100")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is set twice")
        node[parts[-1]] = value
    return out


@dataclass
class Experiment:
    """A parsed experiment file."""

    name: str
    path: Path
    description: str
    reproduce: tuple[str, ...]
    defaults: dict[str, Any]
    scales: dict[str, dict[str, Any]]
    variants: dict[str, dict[str, Any]]

    def resolve(
        self,
        scale: str = "cpu",
        overrides: dict[str, Any] | None = None,
        variants: list[str] | None = None,
    ) -> list[RunConfig]:
        """The validated run configurations of this experiment at ``scale``."""
        if scale not in SCALES:
            raise ConfigError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
        chosen = list(self.variants) if not variants else variants
        unknown = [v for v in chosen if v not in self.variants]
        if unknown:
            raise ConfigError(
                f"experiment {self.name!r} has no variant(s) {', '.join(unknown)}; "
                f"valid: {', '.join(self.variants)}"
            )
        configs = []
        for variant in chosen:
            merged = deep_merge(self.defaults, self.scales.get(scale))
            merged = deep_merge(merged, self.variants[variant])
            merged = deep_merge(merged, overrides)
            merged.update(experiment=self.name, variant=variant, scale=scale)
            try:
                configs.append(RunConfig.from_dict(merged))
            except ConfigError as err:
                raise ConfigError(f"{self.path.name} [{variant}, {scale}]: {err}") from None
        return configs


def list_experiments(directory: Path = EXPERIMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_experiment(name_or_path: str | Path, directory: Path = EXPERIMENTS_DIR) -> Experiment:
    """Load an experiment by name (from ``directory``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        valid = ", ".join(list_experiments(directory))
        raise ConfigError(f"unknown experiment {str(name_or_path)!r}; valid: {valid}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    allowed = {"description", "reproduce", "defaults", "scales", "variants"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
        )
    variants = raw.get("variants") or {"default": {}}
    if not isinstance(variants, dict):
        raise ConfigError(f"{path}: variants must be a mapping of name -> overrides")
    scales = raw.get("scales") or {}
    bad = sorted(set(scales) - set(SCALES))
    if bad:
        raise ConfigError(f"{path}: unknown scale(s) {', '.join(bad)}; valid: {', '.join(SCALES)}")
    return Experiment(
        name=path.stem,
        path=path,
        description=str(raw.get("description", "")).strip(),
        reproduce=tuple(raw.get("reproduce") or ()),
        defaults=raw.get("defaults") or {},
        scales=scales,
        variants={k: (v or {}) for k, v in variants.items()},
    )
