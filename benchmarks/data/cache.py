"""The on-disk data cache, and files and directories published whole (never half-written)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["default_cache_dir", "staged_directory", "staged_file"]


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A temporary directory beside ``target``, renamed to ``target`` when the block
    succeeds (if another process published the same target first, its copy stays) and
    removed otherwise: readers never see a half-written cache."""
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
