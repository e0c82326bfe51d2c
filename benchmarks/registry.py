"""Registries of tasks and models: pure name -> class containers, filled by entry points.

A variant is one class and one decorator, in any importable module:

    @MODELS.register("my-variant")
    class MyVariant(ModelEntry):
        Params = MyParams          # a frozen dataclass
        @classmethod
        def build(cls, params, data): ...

The registries learn their entries from the Python entry-point groups
``primebench.models`` and ``primebench.tasks`` (the built-in catalogue is registered there
by this package's own metadata, third-party packages the same way), read once per
process at the first lookup, and from the modules an experiment file lists under
``plugins:``. An entry point names either a module whose decorators register entries,
or one class with a ``Params`` dataclass, registered under the entry point's name. A job
started on another machine reads the same metadata and the same experiment file, so a
variant in the user's own package is found in local and Slurm jobs alike.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Generic, TypeVar

from .core import ConfigError

__all__ = ["Registry", "TASKS", "MODELS", "import_plugins"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class, with errors that list the valid names.

    ``group``: the entry-point group read at the first lookup (None: no discovery).
    """

    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group
        self._entries: dict[str, type[T]] = {}
        self._discovered = group is None

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if not hasattr(cls, "Params"):
                raise TypeError(f"{self.kind} {name!r} must define a Params dataclass")
            cls.registered_name = name  # type: ignore[attr-defined]
            self._entries[name] = cls
            return cls

        return decorator

    def discover(self, again: bool = False) -> None:
        """Load the entry points of ``group`` (once per process; ``again``: read the
        installed packages anew, e.g. after one was installed into a running process)."""
        if self._discovered and not again:
            return
        self._discovered = True  # before loading: an entry's module may look itself up
        for point in metadata.entry_points(group=self.group):
            try:
                loaded = point.load()
            except Exception as err:
                self._discovered = False
                raise ConfigError(
                    f"entry point {point.name} = {point.value} (group {self.group}): "
                    f"cannot be loaded: {type(err).__name__}: {err}"
                ) from err
            if isinstance(loaded, type) and loaded not in self._entries.values():
                self.register(point.name)(loaded)

    def get(self, name: str, path: str | None = None) -> type[T]:
        self.discover()
        if name not in self._entries:
            where = f"{path}: " if path else ""
            raise ConfigError(f"{where}unknown {self.kind} {name!r}; valid: {self._valid()}")
        return self._entries[name]

    def _valid(self) -> str:
        if self._entries:
            return ", ".join(self.names())
        return (
            f"none (no installed package registers {self.kind}s under the entry-point "
            f"group {self.group!r}: install primebench, e.g. pip install -e .)"
        )

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries


TASKS: Registry = Registry("task", "primebench.tasks")
MODELS: Registry = Registry("model", "primebench.models")


def import_plugins(modules: Iterable[str], path: str = "plugins") -> None:
    """Import the modules an experiment lists under ``plugins:`` (their decorators
    register their entries); an error names the module."""
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as err:
            raise ConfigError(
                f"{path}[{i}]: cannot import module {module!r}: {type(err).__name__}: {err}"
            ) from err
