"""A run's stored configuration, read as data: nothing it names is imported.

Whoever ran a run wrote its ``config.json``, and a tracking store is often shared, so a
report treats the file as data. Its ``plugins`` list is read as names and kept on the
config, never imported. The code a report may import is the user's own:

- the entry points of the installed packages (the registries read them), and
- the ``plugins:`` of the experiment files of this installation
  (``benchmarks/experiments/*.yaml``), imported only when a stored run names a task or
  model that nothing registered yet.

A run whose task or model is still unregistered after that is left out: the index
names it, its unregistered entry and the plugin modules its config lists. A run's
``upstream`` is resolved by renderers from this installation's experiment files, so it
must name one of them (not a path) and its overrides may not set ``plugins``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from ..config import experiments
from ..config.overrides import parse_overrides
from ..config.run_config import RunConfig
from ..config.validation import coerce
from ..core import ConfigError
from ..registry import MODELS, TASKS, Registry, import_plugins

__all__ = ["config_from_stored", "stored_config", "user_plugins"]

log = logging.getLogger("primebench")

_IMPORTED: set[Path] = set()  # experiment folders whose plugins this process imported


def user_plugins(directory: Path | None = None) -> tuple[str, ...]:
    """The plugin modules the experiment files in ``directory`` (default: this
    installation's) list, in file order; a file that does not load adds none."""
    directory = experiments.EXPERIMENTS_DIR if directory is None else directory
    found: dict[str, None] = {}
    for name in experiments.list_experiments(directory):
        try:
            found.update(dict.fromkeys(experiments.load_experiment(name, directory).plugins))
        except ConfigError as err:
            log.warning("report: experiment file %s: %s", name, err)
    return tuple(found)


def _import_user_plugins() -> None:
    """Import :func:`user_plugins` once per process and folder; a module that fails to
    import is named in a warning (the runs needing it are then left out)."""
    directory = experiments.EXPERIMENTS_DIR
    if directory in _IMPORTED:
        return
    _IMPORTED.add(directory)
    for module in user_plugins(directory):
        try:
            import_plugins([module], path=f"{directory.name}/*.yaml plugins")
        except ConfigError as err:
            log.warning("report: %s", err)


def _registered(raw: Any, registry: Registry) -> str | None:
    """The name a ``task``/``model`` section gives, if it is a name not registered."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or name in registry:
        return None
    return name


def _check_entries(raw: dict[str, Any], plugins: tuple[str, ...]) -> None:
    """Every task/model the config names is registered, from the user's own code only."""
    missing = [
        (kind, name)
        for kind, registry in (("task", TASKS), ("model", MODELS))
        if (name := _registered(raw.get(kind), registry)) is not None
    ]
    if missing:
        _import_user_plugins()
        missing = [(k, n) for k, n in missing if n not in (TASKS if k == "task" else MODELS)]
    if not missing:
        return
    names = ", ".join(f"{kind} {name!r}" for kind, name in missing)
    listed = (
        f"; its config lists the plugin module(s) {', '.join(plugins)}, which a report "
        "does not import"
        if plugins
        else ""
    )
    raise ConfigError(
        f"{names} not registered here{listed} (a report imports the installed packages' "
        "entry points and the plugins of this installation's experiment files only)"
    )


def _check_upstream(raw: dict[str, Any]) -> None:
    """An upstream names an experiment of this installation, without ``plugins``."""
    upstream = raw.get("upstream")
    if not isinstance(upstream, dict):
        return  # absent, or malformed: RunConfig.from_dict names the field
    name = upstream.get("experiment")
    known = experiments.list_experiments(experiments.EXPERIMENTS_DIR)
    if name not in known:
        raise ConfigError(
            f"upstream.experiment: {name!r} is not an experiment of this installation "
            "(a report resolves upstream runs from its own experiment files, by name)"
        )
    overrides = upstream.get("overrides") or []
    if isinstance(overrides, list | tuple) and all(isinstance(o, str) for o in overrides):
        if "plugins" in parse_overrides(list(overrides)):
            raise ConfigError("upstream.overrides: sets plugins, which a report does not import")


def config_from_stored(raw: Any) -> RunConfig:
    """The typed config of a stored ``config.json`` mapping, importing nothing it names
    (its ``plugins`` are kept as names on the result)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(raw).__name__}")
    raw = dict(raw)
    plugins = coerce(raw.pop("plugins", None) or (), tuple[str, ...], "plugins")
    _check_entries(raw, plugins)
    _check_upstream(raw)
    config = RunConfig.from_dict(raw)  # without plugins: it imports nothing
    return dataclasses.replace(config, plugins=plugins) if plugins else config


def stored_config(client: Any, mlflow_run_id: str) -> RunConfig:
    """The typed config a run was started with (its ``config.json`` artifact), read by
    :func:`config_from_stored`; a :class:`ConfigError` names the run."""
    try:
        with tempfile.TemporaryDirectory(prefix="primebench-config-") as target:
            path = Path(client.download_artifacts(mlflow_run_id, "config.json", target))
            raw = json.loads(path.read_text())
    except Exception as err:  # a missing or unreadable artifact: name the run
        raise ConfigError(f"MLflow run {mlflow_run_id}: no readable config.json ({err})") from None
    where = f"MLflow run {mlflow_run_id}"
    if isinstance(raw, dict):
        where += f" ({raw.get('experiment')}/{raw.get('variant')}, seed {raw.get('seed', 0)})"
    try:
        return config_from_stored(raw)
    except ConfigError as err:
        raise ConfigError(f"{where}: stored config.json: {err}") from None
