"""Read a torch checkpoint written by another code base without running any of its code.

``torch.load(..., weights_only=True)`` refuses the authors' files outright: their image
checkpoints store the run's ``argparse.Namespace`` and their text checkpoints (Lightning)
store an OmegaConf config beside the weights. Admitting those classes would run their
``__setstate__`` (and need OmegaConf installed). This reader admits exactly the callables
torch needs to rebuild tensors (``torch._utils._rebuild_*``, storage types, ``OrderedDict``)
and turns every other global the file names into an :class:`Opaque` record: a class or
function reference becomes an inert placeholder that keeps its name, its constructor
arguments and its pickled state, and nothing it names is imported or called.
"""

from __future__ import annotations

import collections
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["Opaque", "ForeignCheckpointError", "opaque_fields", "read_foreign_checkpoint"]


class ForeignCheckpointError(ValueError):
    """A checkpoint file that cannot be read as tensors and plain containers."""


class Opaque:
    """Stands for an object of a class the reader does not admit (``name``: its global).

    ``args``: what the pickle passed to build it; ``state``: what it passed to restore it
    (for an ``argparse.Namespace`` or a config object, its fields)."""

    name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # A pickle may add items or attributes to a reconstructed container.
    def __setitem__(self, key: Any, value: Any) -> None:
        if not isinstance(self.state, dict):
            self.state = {}
        self.state[key] = value

    def append(self, value: Any) -> None:
        if not isinstance(self.state, list):
            self.state = []
        self.state.append(value)

    def extend(self, values: Any) -> None:
        for value in values:
            self.append(value)

    def __repr__(self) -> str:
        return f"<opaque {self.name}>"


def _opaque(module: str, name: str) -> type[Opaque]:
    return type(f"Opaque[{module}.{name}]", (Opaque,), {"name": f"{module}.{name}"})


_ADMITTED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): getattr(torch._utils, "_rebuild_tensor_v3", None),
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
}
_DTYPES = {
    str(d).removeprefix("torch."): d for d in vars(torch).values() if isinstance(d, torch.dtype)
}


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        admitted = _ADMITTED.get((module, name))
        if admitted is not None:
            return admitted
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        return _opaque(module, name)


# torch.load calls pickle_module.Unpickler (wrapped to resolve storage types first).
_INERT = types.SimpleNamespace(Unpickler=_InertUnpickler, load=None, __name__="inert_pickle")


def read_foreign_checkpoint(path: str | Path) -> Any:
    """The object stored in the torch checkpoint ``path`` (tensors on the CPU), with every
    non-tensor class replaced by :class:`Opaque`. Raises :class:`ForeignCheckpointError`
    naming the file when it is not a torch zip checkpoint or is truncated."""
    path = Path(path)
    if not path.is_file():
        raise ForeignCheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ForeignCheckpointError(
            f"{path}: not a torch checkpoint (expected the zip format torch.save writes "
            "since torch 1.6); truncated download?"
        )
    try:
        # mmap: the optimizer states beside the weights are never read into memory.
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_INERT, mmap=True
        )
    except Exception as err:  # whatever a damaged archive raises, named by file
        raise ForeignCheckpointError(
            f"{path}: cannot be read as a torch checkpoint ({type(err).__name__}: {err})"
        ) from None


def opaque_fields(obj: Any) -> dict[str, Any]:
    """The fields of an :class:`Opaque` record (its pickled state, or its keyword
    arguments), or ``obj`` itself when it is already a dict."""
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, Opaque):
        if isinstance(obj.state, dict):
            return obj.state
        if isinstance(obj.state, tuple) and obj.state and isinstance(obj.state[0], dict):
            return obj.state[0]
        return dict(obj.kwargs)
    raise ForeignCheckpointError(f"expected a record of fields, got {type(obj).__name__}")
