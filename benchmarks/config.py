"""Typed run configurations and run ids.

A :class:`RunConfig` is one fully resolved run (see :mod:`benchmarks.experiments` for
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

from .core import ConfigError
from .registry import MODELS, TASKS, Registry, import_plugins
from .train_config import TrainConfig
from .validation import build_dataclass, coerce

__all__ = ["ComponentConfig", "UpstreamConfig", "RunConfig", "SCALES"]

SCALES = ("cpu", "paper")


@dataclass(frozen=True)
class ComponentConfig:
    """A registry entry by name and its validated parameters (a dataclass instance)."""

    name: str
    params: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.params)}


@dataclass(frozen=True)
class UpstreamConfig:
    """The trained run whose last checkpoint an evaluation-only task reads (the runner
    loads it and hands the model to the task).

    ``experiment``: the training experiment; ``variant``: its variant (null: the variant
    of the same name as this run's); ``overrides``: the ``--set`` overrides that sweep
    was run with (the checkpoint is found by the run id they resolve to).
    """

    experiment: str
    variant: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run.

    ``upstream``: see :class:`UpstreamConfig` (null: the task trains or needs no model).
    ``plugins``: modules imported before validation (where third-party entries live); not
    part of the run id, since they say where code is, not what it computes.
    """

    experiment: str
    variant: str
    scale: Literal["cpu", "paper"]
    seed: int
    task: ComponentConfig
    model: ComponentConfig | None
    train: TrainConfig = field(default_factory=TrainConfig)
    upstream: UpstreamConfig | None = None
    plugins: tuple[str, ...] = ()

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
        if self.plugins:
            out["plugins"] = list(self.plugins)
        return out

    @property
    def run_id(self) -> str:
        """12 hex digits of sha256 over the canonical JSON of the resolved config, less
        the execution settings (:attr:`TrainConfig.EXECUTION_FIELDS`) and ``plugins``."""
        math = {**self.to_dict(), "train": self.train.math_dict()}
        math.pop("plugins", None)
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
        return cls(
            experiment=coerce(raw["experiment"], str, "experiment"),
            variant=coerce(raw["variant"], str, "variant"),
            scale=coerce(raw["scale"], Literal["cpu", "paper"], "scale"),
            seed=coerce(raw.get("seed", 0), int, "seed"),
            task=_component(raw["task"], TASKS, "task"),
            model=None if model is None else _component(model, MODELS, "model"),
            train=build_dataclass(TrainConfig, raw.get("train"), "train"),
            upstream=None
            if upstream is None
            else build_dataclass(UpstreamConfig, upstream, "upstream"),
            plugins=plugins,
        )


def _component(raw: Any, registry: Registry, path: str) -> ComponentConfig:
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{path}: expected a mapping with a 'name', got {raw!r}")
    params = dict(raw)
    name = params.pop("name")
    entry = registry.get(name, path=f"{path}.name")
    return ComponentConfig(name=name, params=build_dataclass(entry.Params, params, path))
