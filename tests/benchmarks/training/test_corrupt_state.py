"""Corrupt or foreign state is reported, naming the file, and left as it was."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from benchmarks.cli.main import main
from benchmarks.data.images import CIFAR10, image_tokens
from benchmarks.data.text import load_documents
from benchmarks.data.text_sources import ZERO_SHOT
from benchmarks.tracking.store import TrackingError
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.checkpoints import RUN_ID_KEY, CheckpointError, load_trained_model
from benchmarks.training.runner import execute
from tests.helpers import tiny_toy
from tests.paths import REPO


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny trained runs (mdm, prime-l2-joint) of one store."""
    root = tmp_path_factory.mktemp("trained")
    uri, runs = sqlite(root / "mlflow.db"), root / "runs"
    configs = tiny_toy(["mdm", "prime-l2-joint"])
    for config in configs:
        execute(config, uri, runs)
    return uri, runs, configs


def _checkpoint(runs: Path, config) -> Path:
    return runs / config.run_id / "checkpoints" / "last.ckpt"


def _fresh(config, tmp_path: Path, content: bytes) -> tuple[str, Path, Path]:
    """A store and runs directory where ``config``'s last.ckpt holds ``content``."""
    runs = tmp_path / "runs"
    path = _checkpoint(runs, config)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return sqlite(tmp_path / "mlflow.db"), runs, path


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a checkpoint"])
def test_a_damaged_checkpoint_is_reported_and_kept(trained, tmp_path, damage):
    _, runs, (config, _) = trained
    whole = _checkpoint(runs, config).read_bytes()
    content = {
        "empty": b"",
        "truncated": whole[: len(whole) // 2],
        "not a checkpoint": b"not a zip archive at all",
    }[damage]
    uri, runs_here, path = _fresh(config, tmp_path, content)
    message = {"empty": "is empty", "truncated": "truncated", "not a checkpoint": "truncated"}
    with pytest.raises(CheckpointError, match=message[damage]) as err:
        execute(config, uri, runs_here)
    assert str(path) in str(err.value) and "move it aside" in str(err.value)
    assert path.read_bytes() == content  # neither trained over nor replaced
    with pytest.raises(CheckpointError, match=str(path)):
        load_trained_model(config, runs_here)


class _RunsCode:
    """Unpickling this makes a directory: a stand-in for a payload that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_checkpoint_whose_unpickling_runs_code_is_refused_before_it_runs(trained, tmp_path):
    _, _, (config, _) = trained
    marker = tmp_path / "payload-ran"
    runs = tmp_path / "runs"
    path = _checkpoint(runs, config)
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, RUN_ID_KEY: config.run_id, "x": _RunsCode(marker)}, path)
    content = path.read_bytes()
    with pytest.raises(CheckpointError, match="never unpickled") as err:
        load_trained_model(config, runs)
    assert str(path) in str(err.value) and "move it aside" in str(err.value)
    assert not marker.exists() and path.read_bytes() == content


def test_a_checkpoint_of_another_config_is_refused(trained, tmp_path):
    _, runs, (mdm, prime) = trained
    foreign = _checkpoint(runs, mdm).read_bytes()
    uri, runs_here, path = _fresh(prime, tmp_path, foreign)
    with pytest.raises(CheckpointError, match=f"saved by run {mdm.run_id}, not by run"):
        execute(prime, uri, runs_here)
    assert path.read_bytes() == foreign
    (run,) = Tracker(uri).client.search_runs([Tracker(uri).experiment_id("toy2d")])
    assert run.info.status == "FAILED"  # recorded, and no training step was logged
    assert Tracker(uri).client.get_metric_history(run.info.run_id, "train/loss") == []


def test_a_corrupt_or_foreign_tracking_store_is_reported_and_untouched(tmp_path, capsys):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00\x01 this was a database once" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    before = {p: p.read_bytes() for p in (garbage, other)}
    with pytest.raises(TrackingError, match=f"{garbage} is not an SQLite database"):
        Tracker(sqlite(garbage))
    with pytest.raises(TrackingError, match=f"{other} is an SQLite database of something else"):
        Tracker(sqlite(other))
    code = main(["run", "toy2d", "--variant", "mdm", "--tracking-uri", sqlite(garbage)])
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith("primebench: error: tracking store") and "\n" not in line
    assert {p: p.read_bytes() for p in before} == before


# ------------------------------------------------------------------ read-only places

_CAPS = "-dac_override,-dac_read_search"
_UNPRIVILEGED = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv, to run a check without root's file-permission override",
)


def _unprivileged(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` run without the capability by which root writes anywhere, whatever the
    mode bits, so that a read-only file is read-only for it."""
    return subprocess.run(
        ["setpriv", f"--inh-caps={_CAPS}", f"--bounding-set={_CAPS}", sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@_UNPRIVILEGED
def test_a_read_only_tracking_store_is_an_error_before_any_work(tmp_path):
    uri = sqlite(tmp_path / "mlflow.db")
    Tracker(uri).experiment_id("toy2d")
    (tmp_path / "mlflow.db").chmod(0o444)
    before = (tmp_path / "mlflow.db").read_bytes()
    done = _unprivileged(
        f"from benchmarks.tracking.tracker import Tracker; Tracker({uri!r})", tmp_path
    )
    assert done.returncode != 0
    assert f"{tmp_path / 'mlflow.db'} is not writable" in done.stderr
    assert (tmp_path / "mlflow.db").read_bytes() == before


@pytest.mark.slow  # a CLI process as another user: a system test
@_UNPRIVILEGED
def test_a_read_only_results_directory_is_an_error_and_its_files_are_kept(trained, tmp_path):
    uri, _, _ = trained
    out = tmp_path / "results"
    (out / "cpu").mkdir(parents=True)
    (out / "cpu" / "figure4_toy2d.md").write_text("an earlier report\n")
    (out / "cpu").chmod(0o555)
    try:
        done = _unprivileged(
            "import sys; from benchmarks.cli.main import main; "
            f"sys.exit(main(['report', '--tracking-uri', {uri!r}, '--out', {str(out)!r}]))",
            tmp_path,
        )
    finally:
        (out / "cpu").chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert f"results directory {out / 'cpu'}: cannot write there" in done.stderr
    assert (out / "cpu" / "figure4_toy2d.md").read_text() == "an earlier report\n"
    assert sorted(p.name for p in (out / "cpu").iterdir()) == ["figure4_toy2d.md"]


# ------------------------------------------------------------------ data files


def test_a_text_file_of_the_wrong_schema_is_reported(tmp_path):
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"sentence": [1, 2, 3]}), numbers)
    with pytest.raises(ValueError, match=r"column 'sentence' of .*numbers.parquet holds .*int"):
        load_documents(replace(ZERO_SHOT["ptb"], path=str(numbers)))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 and then nothing")
    with pytest.raises(ValueError, match=r"broken.parquet: cannot be read as parquet"):
        load_documents(replace(ZERO_SHOT["ptb"], path=str(broken)))


def test_an_image_file_of_the_wrong_schema_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"img": [1, 2], "label": [0, 1]}), labels)
    with pytest.raises(ValueError, match=r"image column 'img' of .*labels.parquet holds"):
        image_tokens(replace(CIFAR10, path=str(labels)))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npy"))


def test_a_store_being_created_is_waited_for_not_called_foreign(tmp_path):
    """A reader (a status query, a second run) that opens the store while another process
    creates MLflow's tables under the store's lock sees some of the tables only: it waits
    for the lock rather than calling the store something else."""
    import fcntl
    import threading

    from benchmarks.tracking.store import check_sqlite_store

    store = tmp_path / "mlflow.db"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE experiments (id INTEGER)")
        db.execute("CREATE TABLE runs (id INTEGER)")
    errors: list[Exception] = []

    def check() -> None:
        try:
            check_sqlite_store(store)
        except TrackingError as err:
            errors.append(err)

    with open(tmp_path / "mlflow.db.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # the creator, half-way
        reader = threading.Thread(target=check)
        reader.start()
        reader.join(1.0)
        assert reader.is_alive() and not errors  # waiting, not failing
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    reader.join(30)
    assert not reader.is_alive() and errors == []
    # Without the lock, the same half-made store is reported: nobody is finishing it.
    (tmp_path / "mlflow.db.lock").unlink()
    with sqlite3.connect(store) as db:
        db.execute("DROP TABLE alembic_version")
    with pytest.raises(TrackingError, match="something else"):
        check_sqlite_store(store)
