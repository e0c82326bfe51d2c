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
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from .resources import experiments_dir

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


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


# --------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
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
                return _coerce(value, arg, path)
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
                _coerce(v, a, f"{path}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
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
        return float(value)
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
            kwargs[name] = _coerce(values[name], hints[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required setting is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{path}: {err}") from None


def _positive(path: str, **values: float | int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ConfigError(f"{path}.{name}: must be > 0, got {value}")


def require_at_least(obj: Any, path: str, keys: tuple[str, ...], minimum: int = 1) -> None:
    """Raise ConfigError naming the first of ``obj``'s fields ``keys`` below ``minimum``."""
    for key in keys:
        value = getattr(obj, key)
        if value < minimum:
            raise ConfigError(f"{path}.{key}: must be >= {minimum}, got {value}")


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (steps = 0: nothing to train).

    ``global_batch_size`` is the batch of one optimizer step over all ranks (the paper's
    512). With W ranks, each rank takes ``global_batch_size / W`` rows per step, as
    ``accumulation`` micro-batches of ``micro_batch_size`` rows (default: one micro-batch).

    The fields of :attr:`EXECUTION_FIELDS` say how the steps run on the hardware at hand,
    not what they compute: they are left out of the run id (a run started on 8 GPUs
    resumes on 4, or on 2 CPU ranks) and recorded with the run.
    """

    EXECUTION_FIELDS: ClassVar[tuple[str, ...]] = (
        "micro_batch_size",
        "loader_workers",
        "prefetch_factor",
        "compile",
        "tf32",
    )

    steps: int = 0
    global_batch_size: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = None
    ema: float | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    micro_batch_size: int | None = None  # None: global_batch_size / world size
    loader_workers: int = 2  # DataLoader worker processes per rank
    prefetch_factor: int = 2  # batches each worker prepares ahead
    compile: bool = False  # torch.compile the network (used on CUDA only)
    tf32: bool = True  # TensorFloat-32 matmuls (used on Ampere and newer GPUs only)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.warmup_steps < 0:
            raise ConfigError("train.steps and train.warmup_steps must be >= 0")
        _positive(
            "train",
            global_batch_size=self.global_batch_size,
            lr=self.lr,
            checkpoint_every=self.checkpoint_every,
            log_every=self.log_every,
            prefetch_factor=self.prefetch_factor,
        )
        if self.micro_batch_size is not None:
            _positive("train", micro_batch_size=self.micro_batch_size)
        if self.loader_workers < 0:
            raise ConfigError(f"train.loader_workers: must be >= 0, got {self.loader_workers}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"train.ema: must be in (0, 1) or null, got {self.ema}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip: must be > 0 or null, got {self.grad_clip}")

    def split(self, world_size: int) -> tuple[int, int]:
        """(micro-batch rows, micro-batches per step) on each of ``world_size`` ranks."""
        if world_size < 1:
            raise ConfigError(f"world size: must be >= 1, got {world_size}")
        if self.global_batch_size % world_size:
            raise ConfigError(
                f"train.global_batch_size: {self.global_batch_size} rows do not split over "
                f"{world_size} ranks; expected a multiple of {world_size}"
            )
        per_rank = self.global_batch_size // world_size
        micro = self.micro_batch_size or per_rank
        if per_rank % micro:
            raise ConfigError(
                f"train.micro_batch_size: {micro} does not divide the {per_rank} rows of each "
                f"of {world_size} ranks (train.global_batch_size={self.global_batch_size})"
            )
        return micro, per_rank // micro

    def math_dict(self) -> dict[str, Any]:
        """The settings that define the optimisation (the run id's part of this config)."""
        out = dataclasses.asdict(self)
        for name in self.EXECUTION_FIELDS:
            out.pop(name)
        return out


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
        scale = _coerce(raw["scale"], Literal["cpu", "paper"], "scale")
        task = _component(raw["task"], TASKS, "task")
        model = None if raw.get("model") is None else _component(raw["model"], MODELS, "model")
        return cls(
            experiment=_coerce(raw["experiment"], str, "experiment"),
            variant=_coerce(raw["variant"], str, "variant"),
            scale=scale,
            seed=_coerce(raw.get("seed", 0), int, "seed"),
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
