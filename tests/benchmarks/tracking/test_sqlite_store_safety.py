"""The sqlite tracking store after a killed writer, and when it is damaged or foreign.

* A writer killed mid-transaction leaves a hot journal: the store's check rolls it back
  (SQLite's own recovery) instead of calling the store unreadable; a reader that cannot
  write is told who can; a journal whose writer is alive is waited for.
* No message, for a hot journal or a damaged, non-SQLite or foreign file, advises
  starting a new store for existing runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks.tracking.store as tracking_store
from benchmarks.tracking.store import (
    TrackingError,
    check_sqlite_store,
    check_tracking_reachable,
    open_client,
)
from tests.helpers import sqlite
from tests.paths import REPO

METRIC = ("loss", 0.25, 3)  # (name, value, step) committed before the killed write


@pytest.fixture(scope="module")
def made_store(tmp_path_factory) -> Path:
    """An MLflow sqlite store with one run and one metric point, made once."""
    path = tmp_path_factory.mktemp("made") / "mlflow.db"
    client = open_client(sqlite(path))
    run = client.create_run(client.create_experiment("store-safety"))
    name, value, step = METRIC
    client.log_metric(run.info.run_id, name, value, step=step)
    return path


@pytest.fixture
def store(made_store, tmp_path) -> Path:
    path = tmp_path / "mlflow.db"
    shutil.copyfile(made_store, path)
    (tmp_path / "mlflow.db.lock").touch()  # as open_client leaves it
    return path


# A writer that changes the metric and fills a table in one transaction, with a cache of
# one page, so that SQLite writes changed pages into the database file (their originals
# into the journal first), and is then killed before it commits.
_KILLED_WRITER = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("PRAGMA cache_size=1")
db.execute("BEGIN")
db.execute("UPDATE metrics SET value = 999")
db.execute("CREATE TABLE filler (b BLOB)")
for _ in range(300):
    db.execute("INSERT INTO filler VALUES (randomblob(2000))")
os.kill(os.getpid(), signal.SIGKILL)
"""


def _kill_a_writer(path: Path) -> Path:
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], timeout=60)
    assert done.returncode == -signal.SIGKILL
    journal = path.with_name(path.name + "-journal")
    assert journal.stat().st_size > 0
    # A genuine hot journal: a read-only open cannot read the store past it.
    with pytest.raises(sqlite3.OperationalError) as err:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            db.execute("SELECT name FROM sqlite_master").fetchall()
    assert err.value.sqlite_errorname == "SQLITE_READONLY_ROLLBACK"
    return journal


def _advises_a_new_store(message: str) -> bool:
    text = message.lower()
    return "aside" in text or "start a new store" in text or "fresh store" in text


def test_a_hot_journal_of_a_killed_writer_is_rolled_back_and_the_store_kept(store, caplog):
    journal = _kill_a_writer(store)
    with caplog.at_level(logging.WARNING, logger="primebench"):
        check_tracking_reachable(sqlite(store))
    assert "rolled back the hot journal mlflow.db-journal" in caplog.text
    assert not journal.exists()
    with sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        points = db.execute("SELECT key, value, step FROM metrics").fetchall()
    assert "filler" not in tables and points == [METRIC]  # the uncommitted write is gone
    client = open_client(sqlite(store))
    (experiment,) = [e for e in client.search_experiments() if e.name == "store-safety"]
    (run,) = client.search_runs([experiment.experiment_id])
    (point,) = client.get_metric_history(run.info.run_id, METRIC[0])
    assert (point.value, point.step) == METRIC[1:]


def test_a_reader_that_cannot_write_is_told_who_recovers_a_hot_journal(store, monkeypatch):
    journal = _kill_a_writer(store)
    before = (store.read_bytes(), journal.read_bytes())
    real_access = os.access

    def access(path, mode, **kwargs):  # root writes anywhere: this reader may not
        inside = Path(path).resolve().is_relative_to(store.parent)
        return False if inside and mode & os.W_OK else real_access(path, mode, **kwargs)

    monkeypatch.setattr(tracking_store.os, "access", access)
    with pytest.raises(TrackingError) as err:
        check_tracking_reachable(sqlite(store), write=False)
    message = str(err.value)
    assert f"{store}: a hot journal mlflow.db-journal" in message
    assert "not damaged" in message and "`primebench status` by the store's owner" in message
    assert not _advises_a_new_store(message)
    assert (store.read_bytes(), journal.read_bytes()) == before  # nothing written
    monkeypatch.undo()  # the owner: recovers it
    check_tracking_reachable(sqlite(store), write=False)
    assert not journal.exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv, to read without root's file-permission override",
)
def test_a_reader_without_write_permission_is_told_the_same(store):
    journal = _kill_a_writer(store)
    caps = "-dac_override,-dac_read_search"
    code = (
        "from benchmarks.tracking.store import check_tracking_reachable; "
        f"check_tracking_reachable({sqlite(store)!r}, write=False)"
    )
    store.chmod(0o444)
    store.parent.chmod(0o555)
    try:
        done = subprocess.run(
            ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", sys.executable, "-c", code],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        store.parent.chmod(0o755)
        store.chmod(0o644)
    assert done.returncode != 0 and "a hot journal mlflow.db-journal" in done.stderr
    assert journal.stat().st_size > 0


def test_a_live_writers_journal_is_waited_for_not_rolled_back(store, monkeypatch):
    """A journal beside a store whose writer still holds its lock is not hot: the check
    waits, then says the store is busy, and leaves the writer's transaction alone."""
    monkeypatch.setattr(tracking_store, "_BUSY_S", 0.2)
    writer = sqlite3.connect(store, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE metrics SET value = 7")
    try:
        with pytest.raises(TrackingError, match="stayed locked by another process"):
            check_sqlite_store(store)
        writer.execute("COMMIT")
    finally:
        writer.close()
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT value FROM metrics").fetchall() == [(7.0,)]


def test_no_message_about_a_damaged_or_foreign_file_advises_a_new_store(store, tmp_path):
    data = bytearray(store.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[100:page] = b"\xff" * (page - 100)  # the schema page's b-tree, not its header
    store.write_bytes(bytes(data))
    with pytest.raises(TrackingError) as damaged:
        check_sqlite_store(store)
    assert f"sqlite3 {store} .recover" in str(damaged.value)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 50)
    with pytest.raises(TrackingError) as not_sqlite:
        check_sqlite_store(garbage)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(TrackingError) as foreign:
        check_sqlite_store(other)
    for err in (damaged, not_sqlite, foreign):
        assert not _advises_a_new_store(str(err.value)), err.value
    assert "backup" in str(not_sqlite.value) and "left untouched" in str(foreign.value)
