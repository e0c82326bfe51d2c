"""The sha256 of a weights file, read in 1 MiB chunks, remembered for the process.

A released checkpoint is hashed once per process: the digest is kept in memory, keyed by
the file's identity and state (device, inode, size, modification time in ns), so a file
rewritten in place is hashed again and nothing is written beside it (the hub's cache
stays exactly as the hub library left it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tqdm import tqdm

__all__ = ["CHUNK_BYTES", "PROGRESS_FROM_BYTES", "file_sha256"]

CHUNK_BYTES = 1 << 20
# Below this a file hashes in well under a second: a progress bar would only flicker.
PROGRESS_FROM_BYTES = 100_000_000

_Key = tuple[str, int, int, int, int]
_digests: dict[_Key, str] = {}


def _key(path: Path) -> _Key:
    st = os.stat(path)  # follows the hub cache's symlink to the blob
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_sha256(path: str | Path) -> tuple[str, int]:
    """``(hex sha256, size in bytes)`` of the file at ``path`` (a symlink is followed).

    Large files (over :data:`PROGRESS_FROM_BYTES`) show a progress bar on a terminal."""
    path = Path(path)
    key = _key(path)
    size = key[3]
    digest = _digests.get(key)
    if digest is not None:
        return digest, size
    h = hashlib.sha256()
    # disable=None: no bar when stderr is not a terminal (batch logs stay readable).
    with (
        open(path, "rb") as f,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"sha256 {path.name}",
            disable=None if size > PROGRESS_FROM_BYTES else True,
            leave=False,
        ) as bar,
    ):
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
            bar.update(len(chunk))
    digest = h.hexdigest()
    # Keyed by the state seen before reading: a file changed while being read gets a new
    # key next time and is hashed again.
    _digests[key] = digest
    return digest, size
