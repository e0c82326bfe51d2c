"""The cache of real images' FID features, shared by concurrent runs.

Every run of an image experiment scores its samples against the same real images (the
reference set, and the held-out images of the real-data floor), so their features are
computed once per (image content, extractor) and kept as

    <cache_dir>/fid-reference/<label>-<extractor>-<digest of the pixels>.npy

Runs that start together (the two variants of a sweep) would each miss the cache and
compute every set. An exclusive ``flock`` on ``<entry>.lock`` lets one process compute an
entry while the others wait for it; ``share_references`` first takes, without waiting,
the entries that no one else is computing, so two runs needing two sets compute one each
instead of both computing both. A lock dies with its process, so a crash leaves no stale
lock, only a missing entry that the next run computes. The cache may be shared, so an
entry or lock that is a symbolic link is refused (:class:`benchmarks.safe_files.UnsafePath`)
rather than read or written through, and entries are published by rename.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..safe_files import atomic_write, check_not_symlink, ensure_directory, open_nofollow
from .fid import CleanFIDFeatures, InceptionFeatures

__all__ = ["reference_entry", "reference_features", "share_references"]

log = logging.getLogger("primebench")

Extractor = InceptionFeatures | CleanFIDFeatures


def reference_entry(images: np.ndarray, extractor: Extractor, cache_dir: Path, label: str) -> Path:
    """The cache file of the features of ``images`` (N, channels, H, W) under ``extractor``."""
    pixels = np.ascontiguousarray(np.asarray(images))
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
    digest = hashlib.sha256(f"{digest}-{pixels.shape}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "fid-reference" / f"{label}-{extractor.name}-{digest}.npy"


@contextmanager
def _entry_lock(entry: Path, wait: bool) -> Iterator[bool]:
    """Hold the exclusive lock of ``entry``; yields False (without waiting) when ``wait``
    is False and another process holds it."""
    ensure_directory(entry.parent, "FID reference cache")
    lock = entry.with_name(entry.name + ".lock")
    fd = open_nofollow(lock, os.O_RDWR | os.O_CREAT, "FID reference cache lock")
    with os.fdopen(fd, "rb+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load(entry: Path, count: int) -> np.ndarray:
    """The cached features, checked: (count, D) floats, else an error naming the file."""
    check_not_symlink(entry, "FID reference cache entry")
    try:
        features = np.load(entry)
    except (OSError, ValueError, EOFError) as exc:
        raise RuntimeError(
            f"{entry}: not a readable feature cache ({exc}); expected a .npy array of "
            f"{count} feature rows. Delete the file to compute it again."
        ) from exc
    if features.ndim != 2 or features.shape[0] != count or features.dtype.kind != "f":
        raise RuntimeError(
            f"{entry}: holds a {features.dtype} array of shape {features.shape}; expected "
            f"{count} rows of float features. Delete the file to compute it again."
        )
    return features


def _compute(images: np.ndarray, extractor: Extractor, entry: Path, label: str) -> np.ndarray:
    features = extractor(np.ascontiguousarray(images), desc=f"{label} features")
    with atomic_write(entry, "FID reference cache entry") as handle:
        np.save(handle, features)
    return features


def reference_features(
    images: np.ndarray, extractor: Extractor, cache_dir: Path, label: str = "reference"
) -> np.ndarray:
    """Features of a set of real images, read from the cache or computed into it; if
    another process is computing them, this waits for its result."""
    entry = reference_entry(images, extractor, cache_dir, label)
    if entry.is_file():
        return _load(entry, len(images))
    with _entry_lock(entry, wait=True):
        if entry.is_file():  # computed by the process this one waited for
            return _load(entry, len(images))
        return _compute(images, extractor, entry, label)


def share_references(
    sets: Sequence[tuple[np.ndarray, str]], extractor: Extractor, cache_dir: Path
) -> int:
    """Compute the missing ones of ``sets`` ((images, label) pairs) that no other process
    is computing, without waiting for any; returns how many this process computed. A
    later ``reference_features`` of a set left to another process waits for it."""
    computed = 0
    for images, label in sets:
        entry = reference_entry(images, extractor, cache_dir, label)
        check_not_symlink(entry, "FID reference cache entry")
        if entry.is_file():
            continue
        with _entry_lock(entry, wait=False) as held:
            if not held:
                log.info("%s: another process is computing it; going on", entry.name)
            elif not entry.is_file():
                _compute(images, extractor, entry, label)
                computed += 1
    return computed
