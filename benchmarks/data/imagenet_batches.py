"""ImageNet-32 from the downsampled-ImageNet pickles (Chrabaszcz et al., 2017).

The paper's ImageNet-32 is the downsampled ImageNet of ImageNet's download page
(box-resized to 32 x 32), read from its pickled batches::

    DIR/train/train_data_batch_1 ... DIR/train/train_data_batch_10   (1,281,167 images)
    DIR/val/val_data                                                 (50,000 images)

Each file is a pickled dict: ``data``, an (N, 3072) uint8 array whose row is the image in
channel-planar order (the 1024 red values row by row, then green, then blue), so that
``data.reshape(N, 3, 32, 32)[n, c, i, j] = data[n, 1024 c + 32 i + j]``; ``labels``, N
class numbers in 1..1000; train batches also hold ``mean`` (the mean image), unused.
Labels are checked (one per image, in 1..1000) and returned 0-based; the image task
generates unconditionally and drops them.

Pickles can run code when read, so they are read by an unpickler that builds numpy arrays,
numpy scalars and plain containers and refuses every other global, naming the file and
the global. Python 3 pickles at any protocol up to 4 are read, and Python 2 ones (8-bit
strings, read as latin-1, which numpy's array reconstruction expects); keys written as
bytes (``b'data'``) are read as text.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .cache import default_cache_dir, published, staged_directory

__all__ = ["BATCH_FILES", "RefusedPickle", "SafeArrayUnpickler", "read_batch", "imagenet32_split"]

FORMAT_VERSION = 1
SIDE = 32
PIXELS = 3 * SIDE * SIDE
CLASSES = 1000
BATCH_FILES = {
    "train": tuple(f"train/train_data_batch_{i}" for i in range(1, 11)),
    "validation": ("val/val_data",),
}
LAYOUT = "DIR/train/train_data_batch_1 .. DIR/train/train_data_batch_10, DIR/val/val_data"


# The globals a pickled numpy array or scalar names (numpy 1.x wrote numpy.core, numpy 2
# writes numpy._core), taken from numpy's own reductions rather than imported by name.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedPickle(ValueError):
    """A pickle that names a global (or a persistent id) outside the admitted ones."""


class SafeArrayUnpickler(pickle.Unpickler):
    """An unpickler whose only globals are those of numpy arrays and scalars (and the
    latin-1 ``_codecs.encode`` of Python 3's protocol-2 bytes); any other global (os.system,
    builtins.eval, ...) raises ValueError naming ``path`` and the global before anything
    is called."""

    def __init__(self, file: BinaryIO, path: str | Path):
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return self._latin1_encode
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(
                f"{self.path}: refused global {module}.{name} in the pickle (only numpy "
                "arrays, numpy scalars and plain containers are read)"
            ) from None

    def _latin1_encode(self, text: str, encoding: str = "utf-8") -> bytes:
        """``_codecs.encode`` as Python 3 pickles bytes at protocols 0-2, (text, 'latin1'),
        and nothing else."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise RefusedPickle(
                f"{self.path}: refused _codecs.encode({type(text).__name__}, {encoding!r}) in "
                "the pickle (admitted for latin-1 text only)"
            )
        return text.encode("latin1")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle(f"{self.path}: refused persistent id {pid!r} in the pickle")


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            obj = SafeArrayUnpickler(f, path).load()
    except FileNotFoundError:
        raise ValueError(
            f"{path}: missing (expected the downsampled-ImageNet layout {LAYOUT})"
        ) from None
    except RefusedPickle:
        raise
    except Exception as err:  # truncated or corrupt: whatever pickle raised, named by file
        raise ValueError(
            f"{path}: cannot be read as a pickle of numpy arrays, truncated or corrupt? "
            f"({type(err).__name__}: {err})"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path}: expected a pickled dict with 'data' and 'labels', got {type(obj).__name__}"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: images (N, 3, 32, 32) uint8 in (channel, row, column) order and
    labels (N,) int64 in 0..999 (the file's 1..1000 minus one)."""
    path = Path(path)
    d = _load(path)
    for key in ("data", "labels"):
        if key not in d:
            raise ValueError(f"{path}: no {key!r} entry (keys: {', '.join(map(str, d))})")
    data = d["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != PIXELS
    ):
        got = (
            f"{data.dtype} array {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise ValueError(f"{path}: 'data' must be an (N, {PIXELS}) uint8 array, got {got}")
    labels = d["labels"]
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(isinstance(y, int) for y in labels):
        raise ValueError(
            f"{path}: 'labels' must be a list of integers, got {type(labels).__name__}"
        )
    if len(labels) != len(data):
        raise ValueError(
            f"{path}: {len(labels)} labels for {len(data)} images (expected one per image)"
        )
    y = np.asarray(labels, dtype=np.int64)
    if len(y) and (y.min() < 1 or y.max() > CLASSES):
        raise ValueError(f"{path}: labels must lie in 1..{CLASSES}, got {y.min()}..{y.max()}")
    return data.reshape(len(data), 3, SIDE, SIDE), y - 1


def imagenet32_split(directory: str | Path, split: str) -> np.ndarray:
    """(N, 3, 32, 32) uint8 images of ``split`` ("train": the ten train batches in order;
    "validation": val_data) under ``directory``, cached memory-mapped. The cache key is
    the files' names, sizes and modification times."""
    if split not in BATCH_FILES:
        raise ValueError(
            f"ImageNet-32 batches: split must be one of {', '.join(BATCH_FILES)}, got {split!r}"
        )
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(
            f"{root}: not a directory (expected the downsampled-ImageNet layout {LAYOUT})"
        )
    files = [root / name for name in BATCH_FILES[split]]
    for f in files:
        if not f.is_file():
            raise ValueError(f"{f}: missing (expected the downsampled-ImageNet layout {LAYOUT})")
    stamp = [
        (f.relative_to(root).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files
    ]
    fields = {"format": FORMAT_VERSION, "split": split, "files": stamp}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    folder = default_cache_dir() / "images" / f"imagenet32-batches-{split}-{key}"
    target = folder / "pixels.npy"
    if not published(target):
        # Two passes: the counts first, so the pixels go straight into the memory-mapped
        # file (the train split is 3.9 GB) rather than through a concatenated copy.
        counts = [len(read_batch(f)[0]) for f in files]
        with staged_directory(folder) as tmp:
            out = np.lib.format.open_memmap(
                tmp / "pixels.npy", "w+", np.uint8, (sum(counts), 3, SIDE, SIDE)
            )
            start = 0
            for f, n in zip(files, counts, strict=True):
                images = read_batch(f)[0]
                if len(images) != n:
                    raise ValueError(
                        f"{f}: changed while being read ({n} then {len(images)} images)"
                    )
                out[start : start + n] = images
                start += n
            out.flush()
            del out
            (tmp / "meta.json").write_text(json.dumps({**fields, "counts": counts}))
    return np.load(target, mmap_mode="r")
