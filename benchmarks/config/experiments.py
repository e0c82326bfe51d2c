"""Experiment files, ``--set`` overrides and grids.

An experiment file (YAML, under ``benchmarks/experiments/``) describes a sweep:

    description: ...
    reproduce: [cpu]            # scales at which `primebench reproduce` runs it, or
                                # {cpu: [mdm, prime], paper: null}: the variants it runs
                                # at each scale (null: all); the rest run on request
    plugins: [mypkg.variants]   # optional: modules that register third-party entries
    defaults:                   # shared by every variant
      seed: 0                   # or seeds: [0, 1, 2]: one run per seed, same variant
      task: {name: toy2d, ...}  # name + the task's parameters
      model: {name: prime, ...} # name + the model's parameters (or null)
      train: {steps: 1500, ...}
      upstream: {experiment: ell-sweep}   # evaluation-only tasks: the trained runs read
    scales:                     # per-scale overrides, deep-merged over defaults
      cpu: {...}
      paper: {...}
    variants:                   # one run each, deep-merged last
      mdm: {model: {ell: 1}}
      prime: {same_as: ell-sweep/cifar10-l2}   # another experiment's run, trained once
    grid:                       # optional: every variant x every combination
      model.ell: [2, 4]
      model.carry_over: [true, false]

A grid multiplies each variant by the product of its axes; the variant ``v`` at
``ell = 2, carry_over = false`` is named ``v-ell2-no_carry_over`` (without the ``v-``
when the file has no variants). ``Experiment.resolve`` merges defaults <- scales[scale]
<- variant <- ``--set`` overrides and validates the result into a :class:`RunConfig`.

A ``same_as`` variant is the run of another experiment's variant, resolved there (its
config, experiment and variant names, and so its run id, are that run's): experiments that
evaluate the same model share one training. A plan submits it once, under its own
experiment when that is part of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core import ConfigError
from ..resources import experiments_dir
from .experiment_fields import reproduce_field, training_seeds
from .overrides import deep_merge, expand_grid, parse_overrides
from .run_config import SCALES, RunConfig, check_runnable
from .weights_choice import choose_weights
from .weights_section import WEIGHTS_MODES
from .yaml_io import load_yaml, yaml_problem

__all__ = [
    "Experiment",
    "EXPERIMENTS_DIR",
    "resolve_variant",
    "list_experiments",
    "load_experiment",
    "upstream_config",
]

EXPERIMENTS_DIR = experiments_dir()
FILE_KEYS = tuple("description reproduce plugins defaults scales variants grid recipe".split())


@dataclass
class Experiment:
    """A parsed experiment file (with its grid expanded into ``variants``)."""

    name: str
    path: Path
    description: str
    reproduce: dict[str, tuple[str, ...] | None]  # scale -> the variants it runs (None: all)
    defaults: dict[str, Any]
    scales: dict[str, dict[str, Any]]
    variants: dict[str, dict[str, Any]]
    plugins: tuple[str, ...] = ()
    shared: dict[str, tuple[str, str]] = field(default_factory=dict)
    """variant -> (experiment, variant) of the run it is (``same_as``)."""
    recipe: dict[str, Any] = field(default_factory=dict)
    """Where each setting comes from (:mod:`benchmarks.config.recipe`)."""

    def reproduced(self, scale: str) -> list[str] | None:
        """The variants ``primebench reproduce`` runs at ``scale`` (None: every one)."""
        chosen = self.reproduce.get(scale)
        return list(chosen) if chosen is not None else None

    def resolve(
        self,
        scale: str = "cpu",
        overrides: dict[str, Any] | None = None,
        variants: list[str] | None = None,
        weights: str = "trained",
    ) -> list[RunConfig]:
        """The validated run configurations of this experiment at ``scale``.

        ``weights``: ``trained`` (each run trains its model or reads its upstream's
        checkpoint) or ``released`` (each run evaluates the weights its variant's
        ``weights:`` section names, or its upstream variant's; a variant without any
        raises :class:`NoReleasedWeights`)."""
        if scale not in SCALES:
            raise ConfigError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
        if weights not in WEIGHTS_MODES:
            raise ConfigError(
                f"weights: expected one of {', '.join(WEIGHTS_MODES)}, got {weights!r}"
            )
        if weights != "released" and "weights" in (overrides or {}):
            raise ConfigError(
                "weights: a released file is read only with --weights released; a trained "
                "run reads none"
            )
        if weights == "released" and scale != "paper":
            raise ConfigError(
                "--weights released: the released weights are the paper's networks; use "
                "--scale paper"
            )
        chosen = list(self.variants) if not variants else variants
        unknown = [v for v in chosen if v not in self.variants]
        if unknown:
            raise ConfigError(
                f"experiment {self.name!r} has no variant(s) {', '.join(unknown)}; "
                f"valid: {', '.join(self.variants)}"
            )
        configs = []
        for variant in chosen:
            if variant in self.shared:
                experiment, target = self.shared[variant]
                configs += load_experiment(experiment).resolve(scale, overrides, [target], weights)
                continue
            merged = deep_merge(self.defaults, self.scales.get(scale))
            merged = deep_merge(merged, self.variants[variant])
            merged = deep_merge(merged, overrides)
            merged.update(experiment=self.name, variant=variant, scale=scale)
            if self.plugins:
                merged["plugins"] = list(self.plugins)
            where = f"{self.path.name} [{variant}, {scale}]"
            choose_weights(merged, weights, where, _upstream_weights)
            for seed in training_seeds(merged, overrides or {}, where):
                try:
                    configs.append(RunConfig.from_dict({**merged, "seed": seed}))
                    check_runnable(configs[-1])
                except ConfigError as err:  # its kind kept: NoReleasedWeights is listed
                    raise type(err)(f"{where}: {err}") from None
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
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(raw) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(FILE_KEYS))}"
        )
    written = raw.get("variants")
    variants = written or {"default": {}}
    if not isinstance(variants, dict):
        raise ConfigError(f"{path}: variants must be a mapping of name -> overrides")
    scales = raw.get("scales") or {}
    bad = sorted(set(scales) - set(SCALES))
    if bad:
        raise ConfigError(f"{path}: unknown scale(s) {', '.join(bad)}; valid: {', '.join(SCALES)}")
    plugins = raw.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(m, str) for m in plugins):
        raise ConfigError(f"{path}: plugins must be a list of module names, got {plugins!r}")
    variants = {k: (v or {}) for k, v in variants.items()}
    shared = _shared_runs(variants, path)
    if shared and raw.get("grid"):
        raise ConfigError(f"{path}: a file with same_as variants takes no grid")
    variants = expand_grid(variants, raw.get("grid"), str(path), bool(written))
    return Experiment(
        name=path.stem,
        path=path,
        description=str(raw.get("description", "")).strip(),
        reproduce=reproduce_field(raw.get("reproduce"), variants, path),
        defaults=raw.get("defaults") or {},
        scales=scales,
        variants=variants,
        plugins=tuple(plugins),
        shared=shared,
        recipe=raw.get("recipe") or {},
    )


_LOADING: list[str] = []


def _shared_runs(variants: dict[str, Any], path: Path) -> dict[str, tuple[str, str]]:
    """The ``same_as: experiment/variant`` variants (nothing else beside the key)."""
    out = {}
    for name, body in variants.items():
        if not isinstance(body, dict) or "same_as" not in body:
            continue
        target = body["same_as"]
        experiment, sep, variant = str(target).partition("/")
        if len(body) != 1 or not sep or not experiment or not variant or experiment == path.stem:
            raise ConfigError(
                f"{path}: variants.{name}: same_as takes 'experiment/variant' of another "
                f"experiment and nothing beside it, got {body!r}"
            )
        if experiment in _LOADING:  # a file that points back: checked when it loads
            out[name] = (experiment, variant)
            continue
        _LOADING.append(path.stem)
        try:
            target_file = load_experiment(experiment)
        finally:
            _LOADING.pop()
        if variant not in target_file.variants or variant in target_file.shared:
            raise ConfigError(
                f"{path}: variants.{name}: same_as {target}: expected a variant that "
                f"{experiment} runs itself, one of "
                f"{', '.join(v for v in target_file.variants if v not in target_file.shared)}"
            )
        out[name] = (experiment, variant)
    return out


def resolve_variant(
    experiment: str,
    scale: str,
    overrides: dict[str, Any],
    variant: str,
    seed: int,
    weights: str = "trained",
) -> RunConfig:
    """The one run of ``experiment``'s ``variant``: the run at ``seed`` when the variant
    has several training seeds (a downstream run of seed s reads the upstream's seed s)."""
    configs = load_experiment(experiment).resolve(scale, overrides, [variant], weights)
    if len(configs) == 1:
        return configs[0]
    matching = [c for c in configs if c.seed == seed]
    if not matching:
        seeds = ", ".join(str(c.seed) for c in configs)
        raise ConfigError(f"{experiment}/{variant} has runs at seeds {seeds}, none at seed {seed}")
    return matching[0]


def _upstream_weights(upstream: dict[str, Any], variant: str, scale: str, seed: int) -> Any:
    """The released weights of the run ``upstream`` (an ``upstream:`` section) names."""
    trained = resolve_variant(
        upstream["experiment"],
        scale,
        parse_overrides(list(upstream.get("overrides") or ())),
        variant,
        seed,
        weights="released",
    )
    return None if trained.weights is None else trained.to_dict()["weights"]


def upstream_config(config: RunConfig) -> RunConfig:
    """The resolved config of the trained run that ``config.upstream`` names."""
    up = config.upstream
    if up is None:
        raise ValueError(f"{config.experiment}/{config.variant} has no upstream")
    variant = up.variant or config.variant
    try:
        trained = resolve_variant(
            up.experiment,
            config.scale,
            parse_overrides(list(up.overrides)),
            variant,
            config.seed,
            "released" if config.weights is not None else "trained",
        )
    except ConfigError as err:
        raise ConfigError(f"upstream ({up.experiment}/{variant}): {err}") from None
    if trained.model is None:
        raise ConfigError(f"upstream: {up.experiment}/{variant} trains no model")
    return trained
