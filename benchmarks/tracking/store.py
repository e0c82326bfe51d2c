"""Where the tracking store (MLflow) is and whether it can be used, checked before any work starts.

* ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///mlflow.db`` in the working
  directory (made absolute, so jobs started elsewhere write to the same file).
* A server must answer its health check and accept this host's name; a sqlite file must
  be an MLflow database (or not exist yet) and be writable by those who write to it.
* A process killed in the middle of a write leaves a hot journal (``<db>-journal``, or a
  ``-wal`` log) beside the store. The store is whole: SQLite rolls the journal back at the
  next read-write open. The check does that, as any SQLite client would, rather than call
  the store unreadable; a reader that cannot write there is told who can.
* No advice printed here starts a second store for runs that already have one: a run's
  history would then be split over two files.
"""

from __future__ import annotations

import fcntl
import logging
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


log = logging.getLogger("primebench")

_BUSY_S = 30.0  # how long a check waits for a writer's lock before calling the store busy


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
    answers, or a sqlite file that is an MLflow database (or not there yet) and, if
    ``write``, writable."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri, timeout)
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


def _check_server(uri: str, timeout: float) -> None:
    """The server at ``uri`` answers its health check and an API call. MLflow's server
    exempts ``/health`` from its Host-header check, so a server that refuses the host
    name in ``uri`` would pass the health check and then fail every job."""
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(base + "/health", timeout=timeout) as resp:
            if resp.status != 200:
                raise TrackingError(f"tracking server {uri} answered HTTP {resp.status}")
    except (urllib.error.URLError, OSError) as err:
        raise TrackingError(
            f"tracking server {uri} is not reachable ({err}); start it again on the backend "
            "store it had (mlflow server --backend-store-uri ...) and retry: the runs logged "
            "there resume there only"
        ) from None
    try:
        urllib.request.urlopen(
            base + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=timeout
        ).close()
    except urllib.error.HTTPError as err:
        if err.code == 403 and "Host header" in err.read(200).decode("utf-8", "replace"):
            raise TrackingError(
                f"tracking server {uri} refuses the host name of this URI (HTTP 403, "
                "Invalid Host header: by default MLflow accepts localhost and private IP "
                "addresses only); restart it with --allowed-hosts <host>:<port> as written "
                "in the URI"
            ) from None
    except (urllib.error.URLError, OSError):
        pass  # it answered its health check; MLflow's client reports anything else


_SQLITE_MAGIC = b"SQLite format 3\x00"
_JOURNALS = ("-journal", "-wal")


def check_sqlite_store(path: Path) -> None:
    """Raise :class:`TrackingError` unless ``path`` is empty or an MLflow sqlite store.

    Reads the file header and the table names read-only, so a damaged file, or another
    program's database, is reported rather than written into. The one write is SQLite's
    own recovery of a hot journal (:func:`_recover`), when the read-only read finds one."""
    if path.stat().st_size == 0:
        return  # created and not yet initialised: MLflow fills it
    with open(path, "rb") as handle:
        header = handle.read(len(_SQLITE_MAGIC))
    if header != _SQLITE_MAGIC:
        raise TrackingError(
            f"tracking store {path} is not an SQLite database (its first bytes are not "
            "SQLite's); expected an MLflow sqlite store. If it is another program's file, "
            "pass another --tracking-uri and leave it alone; if it was your MLflow store, "
            "restore it from a backup (a new store would not hold its runs)"
        )
    try:
        tables = _table_names(path)
    except sqlite3.DatabaseError as err:
        journal = _journal(path)
        if journal is None or _busy(err):
            raise _unreadable(path, err) from None
        _recover(path, journal)
        try:
            tables = _table_names(path)
        except sqlite3.DatabaseError as again:
            raise _unreadable(path, again) from None
    if tables and not {"experiments", "runs", "alembic_version"} <= tables:
        raise TrackingError(
            f"tracking store {path} is an SQLite database of something else (tables: "
            f"{', '.join(sorted(tables)[:5])}...), not an MLflow store; it is left "
            "untouched: pass --tracking-uri sqlite:///<another file> for the runs"
        )


def _table_names(path: Path) -> set[str]:
    """The tables of ``path``, read read-only. A store that another process is creating
    has some of MLflow's tables only: this waits for its creator (:func:`_store_lock`)."""
    with (
        _store_lock(path, fcntl.LOCK_SH),
        closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=_BUSY_S)) as db,
    ):
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master")}


def _journal(path: Path) -> Path | None:
    """A non-empty rollback journal or write-ahead log beside ``path``, if any."""
    for suffix in _JOURNALS:
        side = path.with_name(path.name + suffix)
        try:
            if side.stat().st_size > 0:
                return side
        except OSError:
            continue
    return None


def _busy(err: sqlite3.DatabaseError) -> bool:
    return getattr(err, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _unreadable(path: Path, err: sqlite3.DatabaseError) -> TrackingError:
    if _busy(err):
        return TrackingError(
            f"tracking store {path} stayed locked by another process for {_BUSY_S:.0f} s "
            f"({err}); try again when the process writing it is done"
        )
    return TrackingError(
        f"tracking store {path} is an SQLite file that cannot be read ({err}). Keep it: "
        f"repair it with `sqlite3 {path} .recover | sqlite3 {path}.recovered` and put the "
        "result in its place, or restore a backup (a new store would not hold its runs)"
    )


def _writable(path: Path) -> bool:
    """Whether this process may roll a journal back: it rewrites the store's pages and
    deletes the journal from the store's directory."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _recover(path: Path, journal: Path) -> None:
    """SQLite's own recovery of the hot ``journal`` a killed writer left: a read-write open
    and one read roll its unfinished transaction back (or replay a write-ahead log's
    committed ones). Done under ``<db>.lock`` so that no process of this suite creates the
    tables meanwhile; SQLite's locks keep every other writer out."""
    if not _writable(path):
        raise TrackingError(
            f"tracking store {path}: a hot journal {journal.name} is beside it (a process "
            "stopped in the middle of a write); the store is not damaged, but SQLite must "
            "roll the journal back first and this process cannot write there. Any "
            "`primebench run` or `primebench status` by the store's owner (a process with "
            "write access) recovers it; then try again"
        )
    try:
        with (
            _store_lock(path, fcntl.LOCK_EX),
            closing(sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=_BUSY_S)) as db,
        ):
            db.execute("SELECT name FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as err:
        raise _unreadable(path, err) from None
    if _journal(path) is None:
        log.warning(
            "tracking store %s: rolled back the hot journal %s left by a process stopped in "
            "the middle of a write (SQLite's own recovery: its unfinished transaction is "
            "dropped, everything committed is kept)",
            path,
            journal.name,
        )


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def _store_lock(path: Path, operation: int) -> Iterator[None]:
    """Hold ``<db>.lock`` (``operation``: ``fcntl.LOCK_SH`` or ``LOCK_EX``): a process
    that creates or upgrades the store's tables holds it exclusively (:func:`open_client`),
    so a shared holder waits until the tables are whole. With no lock file (a store this
    suite did not create) nothing is waited for, and nothing is written beside a foreign
    file."""
    try:
        lock = open(_lock_path(path))
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock.fileno(), operation)
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
