"""What a failed hub download means and what the user can do about it.

``huggingface_hub`` 2.x raises, from ``hf_hub_download`` (``file_download.py``):

- ``LocalEntryNotFoundError`` when the file is not in the cache and the hub could not be
  asked: its ``__cause__`` is ``OfflineModeIsEnabled`` (``HF_HUB_OFFLINE=1``), an
  ``httpx2`` connection error or timeout (hub unreachable, after the library's own
  retries: 5 more tries, 23 s of backoff in all), or an ``HfHubHTTPError`` (5xx) /
  ``FileMetadataError`` (an answer that is not the hub's);
- ``RepositoryNotFoundError`` (404, or 401 for a private repository without a token),
  ``GatedRepoError`` (its subclass, 403), ``RevisionNotFoundError``,
  ``RemoteEntryNotFoundError`` (missing file), other ``HfHubHTTPError`` (401 with a bad
  token), as they come;
- ``httpx2`` transport errors from the download itself (after 5 resumes) or a proxy.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

__all__ = ["WeightsUnavailable", "weights_download_command", "why_unavailable"]

# The errors of a request that never got an answer, by the HTTP stack that raised them
# (``huggingface_hub`` 2.x uses httpx2, 1.x httpx, 0.x requests); only a stack already
# imported can have raised one.
_TRANSPORT_ERRORS = (
    ("httpx2", "TransportError"),
    ("httpx", "TransportError"),
    ("requests", "ConnectionError"),
    ("requests", "Timeout"),
)


class WeightsUnavailable(RuntimeError):
    """Released weights that cannot be had (or not intact); the message names the repo,
    file and revision (or the path) and what to do."""


def weights_download_command(
    repo: str, file: str, revision: str = "main", companions: tuple[str, ...] = ()
) -> str:
    """The one-line shell command that fills the default hub cache with ``file`` (and
    ``companions``) of ``repo`` at ``revision`` on a machine that can reach the hub."""
    files = (file, *companions)
    if _has_hf_command():
        words = ["hf", "download", repo, *files, "--revision", revision]
        return " ".join(shlex.quote(w) for w in words)
    # Before the ``hf`` command existed: the library's own function (JSON strings are
    # Python strings in double quotes, which the shell's single quotes keep as they are).
    q = json.dumps
    calls = "; ".join(
        f"print(hf_hub_download({q(repo)}, {q(f)}, revision={q(revision)}))" for f in files
    )
    return "python -c " + shlex.quote(f"from huggingface_hub import hf_hub_download; {calls}")


def _has_hf_command() -> bool:
    """The installed library has the ``hf`` command (``huggingface_hub`` >= 0.34)."""
    return importlib.util.find_spec("huggingface_hub.cli.hf") is not None


def why_unavailable(
    err: Exception,
    repo: str,
    file: str,
    revision: str,
    cache_dir: str | Path | None,
    batch: tuple[str, ...],
) -> str | None:
    """What went wrong and what to do, for the errors of a download of ``file`` (one of
    the files ``batch``, which the suggested command fetches together); None for others."""
    cache = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE)
    files = batch or (file,)
    command = weights_download_command(repo, files[0], revision, files[1:])
    elsewhere = (
        f"download it on a machine with access (`{command}`) and copy its hub cache to {cache}"
    )
    local = "or give a local path instead (repo: null, file: <path>)"
    cause = _first_line(err.__cause__ if err.__cause__ is not None else err)
    # LocalEntryNotFoundError is an EntryNotFoundError too: it goes first.
    if isinstance(err, LocalEntryNotFoundError):
        if isinstance(err.__cause__, OfflineModeIsEnabled) or constants.HF_HUB_OFFLINE:
            return (
                f"not in the hub cache {cache} and offline mode is on (HF_HUB_OFFLINE=1); "
                f"{elsewhere}, or unset HF_HUB_OFFLINE to download it here, {local}"
            )
        if err.__cause__ is None or _is_transport_error(err.__cause__):
            return _unreachable(cause, elsewhere, local)
        return (
            f"the hub gave no usable answer ({cause}) and the file is not in the hub cache "
            f"{cache}; try again later, or {elsewhere}, {local}"
        )
    if isinstance(err, GatedRepoError):
        return (
            f"repository {repo} is gated ({cause}); accept its conditions on its hub page, "
            f"log in with `hf auth login`, and try again, {local}"
        )
    if isinstance(err, RepositoryNotFoundError):
        return (
            f"repository {repo} not found, or private without access ({cause}); check the "
            f"repo name, or log in with `hf auth login` if it is private, {local}"
        )
    if isinstance(err, RevisionNotFoundError):
        return (
            f"revision {revision} not found in {repo} ({cause}); check the revision "
            "(a branch, tag or 40-hex commit of the repository)"
        )
    if isinstance(err, EntryNotFoundError):
        return (
            f"file {file} not found in {repo} at revision {revision} ({cause}); check the "
            "file's path inside the repository"
        )
    if isinstance(err, HfHubHTTPError):
        return f"the hub refused the request ({cause}); check access to {repo}, {local}"
    if _is_transport_error(err):
        # Raised by the download itself (after its retries and resumes) or by a proxy;
        # the library has deleted its partial file.
        return _unreachable(cause, elsewhere, local, broke_off=True)
    return None


def _unreachable(cause: str, elsewhere: str, local: str, broke_off: bool = False) -> str:
    what = "or the download broke off " if broke_off else ""
    kept = "; no partial file was kept" if broke_off else ""
    return (
        f"cannot reach the hub {what}({cause}){kept}; {elsewhere}, or set HF_HUB_OFFLINE=1 "
        f"with a filled cache, {local}"
    )


def _is_transport_error(err: BaseException) -> bool:
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    for module_name, name in _TRANSPORT_ERRORS:
        module = sys.modules.get(module_name)
        kind = getattr(module, name, None) if module is not None else None
        if isinstance(kind, type) and isinstance(err, kind):
            return True
    return False


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
