"""Where the MLflow store is and whether it can be used, checked before any work starts.

* ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db`` in the working
  directory (made absolute, so jobs started elsewhere write to the same file).
* A server must answer its health check; a sqlite file must be an MLflow store (or not
  exist yet) and be writable by those who write to it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "TrackingError",
    "resolve_tracking_uri",
    "check_tracking_reachable",
    "check_sqlite_store",
    "open_client",
    "sqlite_path",
]


class TrackingError(RuntimeError):
    """The tracking store cannot be used."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use, with a relative sqlite path made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite URI (None for other stores)."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_tracking_reachable(uri: str, timeout: float = 10.0, write: bool = True) -> None:
    """Raise :class:`TrackingError` unless the store at ``uri`` can be used: a server that
    answers, or a sqlite file that is an MLflow store (or not there yet) and, if
    ``write``, writable."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                if resp.status != 200:
                    raise TrackingError(f"tracking server {uri} answered HTTP {resp.status}")
        except (urllib.error.URLError, OSError) as err:
            raise TrackingError(
                f"tracking server {uri} is not reachable ({err}); start it, or drop "
                "--tracking-uri / MLFLOW_TRACKING_URI to use the local sqlite store"
            ) from None
        return
    path = sqlite_path(uri)
    if path is not None:
        if not path.parent.is_dir():
            raise TrackingError(f"tracking store {uri}: directory {path.parent} does not exist")
        if path.exists():
            check_sqlite_store(path)
        if write and (
            not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))
        ):
            raise TrackingError(
                f"tracking store {uri}: {path if path.exists() else path.parent} is not "
                "writable (an MLflow sqlite store needs its file and directory writable)"
            )
        return
    if uri.startswith("file:") or "://" not in uri:
        raise TrackingError(
            f"tracking URI {uri!r}: MLflow refuses the plain file store; use "
            "sqlite:///path/to/mlflow.db or an http(s) server"
        )


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_store(path: Path) -> None:
    """Raise :class:`TrackingError` unless ``path`` is empty or an MLflow sqlite store.

    Reads the file header and the table names only (read-only), so a corrupt file, or
    another program's database, is reported rather than written into."""
    if path.stat().st_size == 0:
        return  # created and not yet initialised: MLflow fills it
    with open(path, "rb") as handle:
        header = handle.read(len(_SQLITE_MAGIC))
    if header != _SQLITE_MAGIC:
        raise TrackingError(
            f"tracking store {path} is not an SQLite database (corrupt or another kind of "
            "file); expected an MLflow sqlite store. Move it aside to start a new store"
        )
    try:
        # A store that another process is creating has some of MLflow's tables only.
        with (
            _after_creation(path),
            closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db,
        ):
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        raise TrackingError(
            f"tracking store {path} cannot be read as SQLite ({err}); expected an MLflow "
            "sqlite store. Move it aside to start a new store"
        ) from None
    if tables and not {"experiments", "runs", "alembic_version"} <= tables:
        raise TrackingError(
            f"tracking store {path} is an SQLite database of something else (tables: "
            f"{', '.join(sorted(tables)[:5])}...), not an MLflow store"
        )


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def _after_creation(path: Path) -> Iterator[None]:
    """Hold a shared lock of ``<db>.lock``: a process that creates or upgrades the
    store's tables holds it exclusively (:func:`open_client`), so this waits until the
    tables are whole. With no lock file (a store this suite did not create) nothing is
    waited for, and nothing is written beside a foreign file."""
    try:
        lock = open(_lock_path(path))
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def open_client(uri: str, write: bool = True) -> Any:
    """An MlflowClient of ``uri`` whose store is ready. A sqlite store is opened under a
    lock beside it (``<db>.lock``): opening creates or upgrades MLflow's tables, and
    processes that open a new store at once would otherwise all run the migrations, and
    all but one fail half-way. A reader in a directory it cannot write takes no lock
    (nothing can be created there)."""
    from mlflow.tracking import MlflowClient

    path = sqlite_path(uri)
    if path is None:
        return MlflowClient(tracking_uri=uri)
    try:
        lock = open(_lock_path(path), "a")
    except OSError:
        if write:
            raise
        return MlflowClient(tracking_uri=uri)
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return client
