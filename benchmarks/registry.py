"""Registries of tasks and models: a new variant is one class and one decorator.

    @MODELS.register("my-variant")
    class MyVariant(ModelEntry):
        @dataclass(frozen=True)
        class Params: ...
        def build(self, params, data): ...

Every experiment file, sweep and report accepts a registered name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry", "TASKS", "MODELS", "load_builtin_entries"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class, with errors that list the valid names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

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

    def get(self, name: str, path: str | None = None) -> type[T]:
        load_builtin_entries()
        if name not in self._entries:
            from .config import ConfigError

            where = f"{path}: " if path else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        load_builtin_entries()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        load_builtin_entries()
        return name in self._entries


TASKS: Registry = Registry("task")
MODELS: Registry = Registry("model")

_loaded = False


def load_builtin_entries() -> None:
    """Import the modules whose decorators fill the registries (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import models, tasks  # noqa: F401
