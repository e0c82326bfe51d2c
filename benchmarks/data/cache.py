"""The on-disk data cache, and files and directories published whole (never half-written).

The cache may be shared (``$PRIMEBENCH_DATA_CACHE``) and its entry names are
predictable, so an entry that is a symbolic link is refused rather than read or
published through (:mod:`benchmarks.safe_files`); the cache root itself may be a link.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..safe_files import check_not_symlink

__all__ = ["default_cache_dir", "published", "staged_directory", "staged_file"]


def published(target: Path) -> bool:
    """Whether the cache file ``target`` (``<root>/<entry>/<file>``) is there; refuses
    with :class:`benchmarks.safe_files.UnsafePath` an entry or file that is a link."""
    check_not_symlink(target.parent, "data cache entry")
    check_not_symlink(target, "data cache file")
    return target.is_file()


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A temporary directory beside ``target``, renamed to ``target`` when the block
    succeeds (if another process published the same target first, its copy stays) and
    removed otherwise: readers never see a half-written cache."""
    check_not_symlink(target, "data cache entry")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def default_cache_dir() -> Path:
    """``$PRIMEBENCH_DATA_CACHE``, else ``~/.cache/primebench``."""
    env = os.environ.get("PRIMEBENCH_DATA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "primebench"


@contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (same suffix, so writers that add one do not
    miss it), renamed to ``target`` when the block succeeds and removed otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=target.stem + ".", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
