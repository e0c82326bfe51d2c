"""Typed run configurations and run ids.

A :class:`RunConfig` is one fully resolved run (see :mod:`benchmarks.config.experiments` for
the experiment files it comes from): the unit of tracking, checkpointing and launching.
Task and model parameters are validated against the ``Params`` dataclasses their
registry entries declare. The run id is a hash of the resolved configuration, stable
across processes and machines.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core import ConfigError
from ..registry import MODELS, TASKS, Registry, import_plugins
from .train_config import TrainConfig
from .validation import build_dataclass, coerce
from .weights_section import NoReleasedWeights, WeightsConfig

__all__ = [
    "ComponentConfig",
    "UpstreamConfig",
    "RunConfig",
    "SCALES",
    "SEED_MAX",
    "check_runnable",
    "flatten",
]

SCALES = ("cpu", "paper")
# torch.manual_seed takes at most 2^64 - 1, and the evaluation streams add offsets to the
# run seed (benchmarks.streams): a seed up to 2^63 - 1 leaves them room.
SEED_MAX = 2**63 - 1


@dataclass(frozen=True)
class ComponentConfig:
    """A registry entry by name and its validated parameters (a dataclass instance)."""

    name: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        """Name and settings; the settings an entry lists in its ``LATER_FIELDS`` (added
        after run ids were in use) only when they differ from their defaults, so that
        the runs started before keep their ids and resume (nested settings, such as the
        backbone's, likewise)."""
        out = dataclasses.asdict(self.params)
        _drop_later_defaults(self.params, out)
        return {"name": self.name, **out}


def _drop_later_defaults(params: Any, out: dict[str, Any]) -> None:
    """Remove from ``out`` (``asdict(params)``) the LATER_FIELDS at their defaults, at
    every depth of nested dataclasses."""
    later = getattr(params, "LATER_FIELDS", ())
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if f.name in later and value == f.default:
            out.pop(f.name)
        elif dataclasses.is_dataclass(value):
            _drop_later_defaults(value, out[f.name])


@dataclass(frozen=True)
class UpstreamConfig:
    """The trained run whose last checkpoint an evaluation-only task reads (the runner
    loads it and hands the model to the task)."""

    experiment: str
    """The experiment that trained the checkpoint, e.g. table1 or ell-sweep."""
    variant: str | None = None
    """Its variant; null: the variant of the same name as this run's."""
    overrides: tuple[str, ...] = ()
    """The ``--set`` overrides that sweep was run with (the checkpoint is found by the run
    id they resolve to)."""


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run."""

    experiment: str
    """The experiment file's name."""
    variant: str
    """The variant of the experiment (a grid point is a variant too)."""
    scale: Literal["cpu", "paper"]
    """cpu: minutes on a laptop, relative comparisons only; paper: the paper's settings."""
    seed: int
    """The run seed, in [0, 2^63 - 1]: every random stream of training and evaluation
    derives from it (:mod:`benchmarks.streams`)."""
    task: ComponentConfig
    """The benchmark task by name, with its settings."""
    model: ComponentConfig | None
    """The model by name, with its settings; null when the task needs none or reads the
    upstream run's."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation settings."""
    upstream: UpstreamConfig | None = None
    """The trained run an evaluation-only task reads (null: the task trains its model)."""
    weights: WeightsConfig | None = None
    """Released weights this run evaluates instead of training (``--weights released``);
    null: the run trains its model, or reads its upstream's checkpoint."""
    plugins: tuple[str, ...] = ()
    """Modules imported before validation, where third-party models and tasks register;
    not part of the run id (they say where code is, not what it computes). Only a config
    the user resolves imports them (an experiment file, ``--set``); a report reads every
    stored run's list as names and imports none of them (:mod:`benchmarks.reports.stored_config`:
    it imports the installed packages' entry points and the plugins of this
    installation's experiment files, and leaves out, by name, a run that needs more)."""

    def __post_init__(self) -> None:
        if type(self.seed) is not int or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(
                f"seed: must be an integer in [0, 2^63 - 1], got {self.seed!r} (torch's "
                "manual_seed takes at most 2^64 - 1, and evaluation streams add offsets "
                "to the run seed)"
            )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "experiment": self.experiment,
            "variant": self.variant,
            "scale": self.scale,
            "seed": self.seed,
            "task": self.task.to_dict(),
            "model": None if self.model is None else self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
        }
        # Sections that most runs lack are written only when set, so that adding them
        # left the run ids (and stored configs) of every other run unchanged.
        if self.upstream is not None:
            out["upstream"] = dataclasses.asdict(self.upstream)
        if self.weights is not None:
            out["weights"] = dataclasses.asdict(self.weights)
        if self.plugins:
            out["plugins"] = list(self.plugins)
        return out

    @property
    def run_id(self) -> str:
        """12 hex digits of sha256 over the canonical JSON of the resolved config, less
        the execution settings (:attr:`TrainConfig.EXECUTION_FIELDS`) and ``plugins``."""
        text = json.dumps(self.math_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def math_dict(self) -> dict[str, Any]:
        """The settings the run id is made of: :meth:`to_dict` less the execution
        settings and ``plugins``."""
        math = {**self.to_dict(), "train": self.train.math_dict()}
        math.pop("plugins", None)
        return math

    def flat_params(self) -> dict[str, str]:
        """Dotted keys -> string values, for MLflow params."""
        return {
            key: json.dumps(value) if isinstance(value, list | tuple) else str(value)
            for key, value in flatten(self.to_dict()).items()
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Validate a merged mapping (the inverse of :meth:`to_dict`)."""
        raw = copy.deepcopy(raw)
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            valid = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown top-level setting(s) {', '.join(unknown)}; valid: {valid}")
        for key in ("experiment", "variant", "scale", "task"):
            if key not in raw:
                raise ConfigError(f"{key}: required setting is missing")
        plugins = coerce(raw.get("plugins") or (), tuple[str, ...], "plugins")
        import_plugins(plugins)
        model, upstream = raw.get("model"), raw.get("upstream")
        if upstream is not None:
            upstream = build_dataclass(UpstreamConfig, upstream, "upstream")
            if model is not None:
                raise ConfigError(
                    "model: must be null when upstream is set (the model is the upstream "
                    f"run's: {upstream.experiment})"
                )
        task = _component(raw["task"], TASKS, "task")
        model = None if model is None else _component(model, MODELS, "model")
        _check_model_meets_task(task, model)
        return cls(
            experiment=coerce(raw["experiment"], str, "experiment"),
            variant=coerce(raw["variant"], str, "variant"),
            scale=coerce(raw["scale"], Literal["cpu", "paper"], "scale"),
            seed=coerce(raw.get("seed", 0), int, "seed"),
            task=task,
            model=model,
            train=build_dataclass(TrainConfig, raw.get("train"), "train"),
            upstream=None
            if upstream is None
            else build_dataclass(UpstreamConfig, upstream, "upstream"),
            weights=None
            if raw.get("weights") is None
            else build_dataclass(WeightsConfig, raw["weights"], "weights"),
            plugins=plugins,
        )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys -> leaf values (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def check_runnable(config: RunConfig) -> None:
    """ConfigError unless a task that evaluates a model has one, its own or the upstream
    run's: checked where experiments resolve, before anything runs (a config built by hand
    or read from a store may be a fragment). Released weights are one checkpoint: a task
    that reads the checkpoints along a training has none to read."""
    if config.weights is not None and not TASKS.get(config.task.name).needs_model:
        raise NoReleasedWeights(
            f"task {config.task.name!r} reads the checkpoints kept along a training; the "
            "released weights are a single checkpoint"
        )
    if config.model is None and config.upstream is None:
        if TASKS.get(config.task.name, path="task.name").needs_model:
            raise ConfigError(
                f"model: task {config.task.name!r} needs a model: set model.name, or "
                "upstream to evaluate a trained run"
            )


def _check_model_meets_task(task: ComponentConfig, model: ComponentConfig | None) -> None:
    """The model's settings fit the data the task's settings declare (``model.ell``
    against the vocabulary, ...): the checks that need both."""
    if model is None:
        return
    data = TASKS.get(task.name, path="task.name").declared_data(task.params)
    if data is not None:
        MODELS.get(model.name, path="model.name").check_data(model.params, data)


def _component(raw: Any, registry: Registry, path: str) -> ComponentConfig:
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{path}: expected a mapping with a 'name', got {raw!r}")
    params = dict(raw)
    name = params.pop("name")
    entry = registry.get(name, path=f"{path}.name")
    return ComponentConfig(name=name, params=build_dataclass(entry.Params, params, path))
