"""Fetch a released checkpoint: from the hub through ``huggingface_hub``'s cache, or a path.

The hub library keeps each repository's files in its cache as::

    <cache>/models--<owner>--<name>/blobs/<etag>                 the content
    <cache>/models--<owner>--<name>/snapshots/<commit>/<file>    relative symlink to the blob
    <cache>/models--<owner>--<name>/refs/<branch>                the commit the branch gave

and downloads into a process-unique ``blobs/<etag>.<id>.incomplete`` that it renames to
the blob only when complete (and deletes on failure), so the final name never holds a
partial file; a connection lost mid-file is resumed (HTTP Range) within the same call.
With ``HF_HUB_OFFLINE=1`` it serves a filled cache without any request. A large (LFS)
file's etag is its sha256, so the blob's name checks the content the cache holds.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import hf_hub_download

from .checksum import file_sha256
from .hub_errors import WeightsUnavailable, why_unavailable

__all__ = ["FetchedWeights", "fetch_weights"]

logger = logging.getLogger("primebench")

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FetchedWeights:
    """A checkpoint file on this machine and what it is."""

    path: Path
    """The local file (for the hub: the snapshot entry in its cache)."""
    sha256: str
    """Hex sha256 of the file's content."""
    size: int
    """Bytes."""
    origin: str
    """``owner/name/<file>@<commit>`` from the hub, ``file:<path>`` for a local file."""
    revision: str | None
    """The commit the file came from (hub); None for a local file."""
    companions: tuple[Path, ...] = ()
    """The requested companion files, in order, from the same commit (or directory)."""


def fetch_weights(
    repo: str | None,
    file: str,
    revision: str = "main",
    *,
    companions: tuple[str, ...] = (),
    cache_dir: str | Path | None = None,
    expected_sha256: str | None = None,
) -> FetchedWeights:
    """The checkpoint ``file`` of hub repository ``repo`` at ``revision`` (downloaded into
    the hub cache ``cache_dir`` unless it is there), or the local file ``file`` when
    ``repo`` is None.

    ``companions``: other files the checkpoint is read with, fetched from the commit the
    main file came from (for a local file: names relative to its directory). A branch
    revision logs one warning (the weights are not pinned). Raises
    :class:`WeightsUnavailable` (no traceback needed: the message says what to do) when
    the file cannot be had, when the cached blob's content does not match its sha256
    name, or when its sha256 is not ``expected_sha256``; nothing is loaded then."""
    if repo is None:
        path = _local_file(Path(file), "weights file")
        found = tuple(_local_file(path.parent / c, f"companion of {path}") for c in companions)
        digest, size = file_sha256(path)
        _check_expected(path, digest, expected_sha256)
        return FetchedWeights(path, digest, size, f"file:{file}", None, found)

    batch = (file, *companions)
    path = _hub_file(repo, file, revision, cache_dir, batch)
    commit = _snapshot_commit(path, file)
    if not _COMMIT.fullmatch(revision):
        logger.warning(
            "weights %s/%s: revision %r is not a commit, so the weights are not pinned "
            "(it gave commit %s; set the revision to it to pin them)",
            repo,
            file,
            revision,
            commit,
        )
    # The commit the main file came from, so that a branch moving in between cannot mix
    # files of two commits.
    at = commit or revision
    found = tuple(_hub_file(repo, c, at, cache_dir, batch) for c in companions)
    digest, size = file_sha256(path)
    _check_blob(path, digest)
    for companion in found:
        _check_blob(companion, file_sha256(companion)[0])
    _check_expected(path, digest, expected_sha256)
    return FetchedWeights(path, digest, size, f"{repo}/{file}@{at}", commit, found)


def _local_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise WeightsUnavailable(f"{path}: {what} not found (expected a checkpoint file)")
    if not path.is_file():
        raise WeightsUnavailable(f"{path}: {what} is not a regular file")
    return path


def _hub_file(
    repo: str, file: str, revision: str, cache_dir: str | Path | None, batch: tuple[str, ...]
) -> Path:
    """``hf_hub_download``; its failures as :class:`WeightsUnavailable`."""
    try:
        found = hf_hub_download(repo_id=repo, filename=file, revision=revision, cache_dir=cache_dir)
    except Exception as err:
        why = why_unavailable(err, repo, file, revision, cache_dir, batch)
        if why is None:
            raise
        # The cause stays attached for --debug; the message alone says what to do.
        raise WeightsUnavailable(f"weights {repo}/{file} at revision {revision}: {why}") from err
    return Path(found)


def _snapshot_commit(path: Path, file: str) -> str | None:
    """The commit of the snapshot ``.../snapshots/<commit>/<file>`` that holds ``path``."""
    parents = Path(os.path.abspath(path)).parents
    depth = len(file.split("/")) - 1
    if depth >= len(parents):
        return None
    snapshot = parents[depth]
    if snapshot.parent.name == "snapshots" and _COMMIT.fullmatch(snapshot.name):
        return snapshot.name
    return None


def _check_blob(path: Path, digest: str) -> None:
    """A cached file whose blob is named by a sha256 (an LFS file) must have that sha256.

    Only the snapshot link's own target names the blob: the blob may itself link to a
    store named by another hash. A cache without symlinks holds copies: nothing to check."""
    if not path.is_symlink():
        return
    blob = Path(os.path.normpath(path.parent / os.readlink(path)))
    if _SHA256.fullmatch(blob.name) and blob.name != digest:
        raise WeightsUnavailable(
            f"{path}: the cached blob {blob} is corrupt: its content's sha256 is {digest}, "
            f"its name (the hub's sha256) is {blob.name}; nothing was loaded; delete {blob} "
            "and fetch again"
        )


def _check_expected(path: Path, digest: str, expected: str | None) -> None:
    if expected is not None and digest != expected.lower():
        raise WeightsUnavailable(
            f"{path}: sha256 {digest} is not the expected {expected}; nothing was loaded "
            "(a different or damaged file: fetch the expected one, or correct the "
            "expected sha256)"
        )
