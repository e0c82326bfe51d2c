"""A neighbour on a shared runs directory or data cache plants symbolic links (and other
non-files) where the suite will write: every write is refused or replaces the link, the
file the link names is never touched, and the error names the planted path."""

from __future__ import annotations

import json
import logging
import os
import re

import numpy as np
import pytest
import torch

from benchmarks.data.cache import published, staged_directory
from benchmarks.launch.launcher import submit
from benchmarks.launch.ledger import ledger_path, read_ledger, record
from benchmarks.metrics.fid_reference import reference_entry, reference_features, share_references
from benchmarks.runtime.lease import RunLease
from benchmarks.safe_files import (
    UnsafePath,
    atomic_write,
    ensure_directory,
    ensure_private_directory,
    open_nofollow,
)
from benchmarks.tasks.likelihood import save_per_block
from tests.helpers import StandInFeatures, tiny_toy

VICTIM_TEXT = "the victim's own file\n"


@pytest.fixture
def victim(tmp_path):
    """A file outside the shared directory that a planted link points to."""
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


def _names(path) -> str:
    """A pattern matching an error message that begins with ``path``."""
    return "^" + re.escape(str(path)) + ":"


# ------------------------------------------------------------------ the run lease


def test_a_lease_linked_to_another_file_is_refused_and_that_file_kept(tmp_path, victim):
    run = tmp_path / "runs" / "run-1"
    run.mkdir(parents=True)
    (run / "lease").symlink_to(victim)
    lease = RunLease(run, "job-1")
    with pytest.raises(UnsafePath, match=_names(run / "lease") + " the run lease is a symbolic"):
        lease.acquire(if_busy="exit")
    assert victim.read_text() == VICTIM_TEXT and not lease.held
    assert lease.holder() is None  # the record is not read through the link either
    victim.write_text(json.dumps({"host": "victim", "pid": 1}))
    assert lease.holder() is None


def test_a_dangling_lease_link_creates_nothing_where_it_points(tmp_path):
    run = tmp_path / "runs" / "run-1"
    run.mkdir(parents=True)
    target = tmp_path / "elsewhere" / "created-by-the-run"
    target.parent.mkdir()
    (run / "lease").symlink_to(target)
    with pytest.raises(UnsafePath, match=_names(run / "lease")):
        RunLease(run).try_acquire()
    assert not os.path.lexists(target)


def test_a_run_directory_linked_elsewhere_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "run-1").symlink_to(elsewhere, target_is_directory=True)
    lease = RunLease(runs / "run-1")
    with pytest.raises(UnsafePath, match=_names(runs / "run-1") + " the run directory is a"):
        lease.try_acquire()
    assert list(elsewhere.iterdir()) == [] and lease.holder() is None


@pytest.mark.parametrize("name", ["checkpoints", "artifacts"])
def test_a_linked_checkpoints_or_artifacts_directory_is_refused(tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "runs" / "run-1"
    run.mkdir(parents=True)
    (run / name).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePath, match=_names(run / name) + f" the run's {name} directory"):
        RunLease(run).try_acquire()
    assert list(elsewhere.iterdir()) == []
    assert not (run / "lease").exists()  # refused before anything was written


def test_a_lease_that_is_no_regular_file_is_refused(tmp_path, victim):
    """A FIFO (which a blocking open would wait on), a directory, and a hard link to
    someone else's file (same inode: writing it would write theirs)."""
    for planted, make in [
        ("fifo", lambda p: os.mkfifo(p)),
        ("dir", lambda p: p.mkdir()),
        ("hardlink", lambda p: os.link(victim, p)),
    ]:
        run = tmp_path / "runs" / planted
        run.mkdir(parents=True)
        make(run / "lease")
        with pytest.raises(UnsafePath, match=_names(run / "lease")):
            RunLease(run).try_acquire()
    assert victim.read_text() == VICTIM_TEXT


def test_an_honest_lease_still_works_and_is_a_private_regular_file(tmp_path):
    run = tmp_path / "runs" / "run-1"
    with RunLease(run, "job-7") as lease:
        assert lease.try_acquire()
        st = os.lstat(lease.path)
        assert st.st_mode & 0o777 == 0o644 & ~_umask() and st.st_nlink == 1
        assert lease.holder()["job_id"] == "job-7"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ the shared helpers


def test_atomic_write_replaces_a_planted_link_instead_of_writing_through_it(tmp_path, victim):
    target = tmp_path / "shared" / "samples.txt"
    target.parent.mkdir()
    target.symlink_to(victim)
    with atomic_write(target, "samples artifact") as handle:
        handle.write(b"new samples")
    assert not target.is_symlink() and target.read_bytes() == b"new samples"
    assert victim.read_text() == VICTIM_TEXT
    # a failure inside the block publishes nothing and leaves no temporary file
    with pytest.raises(ValueError), atomic_write(target, "samples artifact") as handle:
        handle.write(b"half")
        raise ValueError("writer failed")
    assert target.read_bytes() == b"new samples"
    assert sorted(p.name for p in target.parent.iterdir()) == ["samples.txt"]


def test_open_nofollow_and_ensure_directory_name_what_they_refuse(tmp_path, victim):
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(UnsafePath, match=_names(link) + " the ledger is a symbolic link"):
        open_nofollow(link, os.O_WRONLY | os.O_APPEND, "ledger")
    with pytest.raises(UnsafePath, match=_names(link) + " the cache is a symbolic link"):
        ensure_directory(link, "cache")
    with pytest.raises(UnsafePath, match=_names(victim) + " the cache is not a directory"):
        ensure_directory(victim, "cache")
    assert victim.read_text() == VICTIM_TEXT


# ------------------------------------------------------------------ files in a run


def test_an_artifact_planted_as_a_link_is_replaced_and_its_target_kept(tmp_path, victim):
    artifacts = tmp_path / "runs" / "run-1" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "per_block_nll.npz").symlink_to(victim)
    path = save_per_block(artifacts, {"elbo": torch.tensor([2.0, 4.0])}, {"elbo": 2}, [0, 1], 5)
    assert not path.is_symlink() and victim.read_text() == VICTIM_TEXT
    with np.load(path) as saved:
        assert saved["elbo"].tolist() == [1.0, 2.0] and int(saved["seed"]) == 5


def test_a_ledger_planted_as_a_link_is_neither_written_nor_read(tmp_path, victim, caplog):
    runs = tmp_path / "runs"
    ledger = ledger_path(runs)
    ledger.parent.mkdir(parents=True)
    ledger.symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="primebench"):
        record(runs, [tiny_toy()], ["123"], "local")
        assert read_ledger(runs) == []
    assert victim.read_text() == VICTIM_TEXT
    assert f"{ledger}: the submission ledger is a symbolic link" in caplog.text
    assert "jobs 123 are not recorded" in caplog.text


# ------------------------------------------------------------------ the data caches


def _images():
    return np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)


def test_a_fid_reference_entry_linked_to_another_file_is_refused(tmp_path, victim):
    images, extractor, cache = _images(), StandInFeatures(dim=4), tmp_path / "cache"
    entry = reference_entry(images, extractor, cache, "ref")
    entry.parent.mkdir(parents=True)
    entry.symlink_to(victim)
    with pytest.raises(UnsafePath, match=_names(entry) + " the FID reference cache entry"):
        reference_features(images, extractor, cache, "ref")
    with pytest.raises(UnsafePath, match=_names(entry)):
        share_references([(images, "ref")], extractor, cache)
    assert victim.read_text() == VICTIM_TEXT


def test_a_dangling_fid_entry_link_is_replaced_and_a_linked_lock_refused(tmp_path):
    images, extractor, cache = _images(), StandInFeatures(dim=4), tmp_path / "cache"
    entry = reference_entry(images, extractor, cache, "ref")
    entry.parent.mkdir(parents=True)
    nowhere = tmp_path / "elsewhere" / "not-there.npy"
    nowhere.parent.mkdir()
    entry.symlink_to(nowhere)  # dangling: is_file() is False, so the entry is computed
    features = reference_features(images, extractor, cache, "ref")
    assert not entry.is_symlink() and not nowhere.exists()
    assert np.array_equal(np.load(entry), features)
    # the lock beside an entry still to compute
    other = reference_entry(images[:2], extractor, cache, "floor")
    lock = other.with_name(other.name + ".lock")
    lock.symlink_to(nowhere)
    with pytest.raises(UnsafePath, match=_names(lock) + " the FID reference cache lock"):
        reference_features(images[:2], extractor, cache, "floor")
    assert not nowhere.exists() and not other.exists()


def test_a_data_cache_entry_linked_elsewhere_is_neither_read_nor_published(tmp_path, victim):
    root = tmp_path / "cache" / "text"
    root.mkdir(parents=True)
    folder = root / "owt-validation-b64-bytes-0123456789abcdef"
    np.save(victim.parent / "blocks.npy", np.arange(4))
    folder.symlink_to(victim.parent, target_is_directory=True)
    with pytest.raises(UnsafePath, match=_names(folder) + " the data cache entry is a"):
        published(folder / "blocks.npy")
    with pytest.raises(UnsafePath, match=_names(folder)), staged_directory(folder) as tmp:
        np.save(tmp / "blocks.npy", np.zeros(4))
    assert sorted(p.name for p in victim.parent.iterdir()) == ["blocks.npy", "victim.txt"]
    assert np.load(victim.parent / "blocks.npy").tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in root.iterdir()) == [folder.name]  # no stray staging dir
    # a real entry whose file is a link is refused too
    real = root / "real-entry"
    real.mkdir()
    (real / "blocks.npy").symlink_to(victim.parent / "blocks.npy")
    with pytest.raises(UnsafePath, match=_names(real / "blocks.npy") + " the data cache file"):
        published(real / "blocks.npy")


def test_a_job_folder_others_can_write_in_is_refused_before_any_job(tmp_path):
    """submitit unpickles the results in runs/submitit/<cluster>: a folder another user
    owns or may write in could run code in the launcher."""
    jobs = tmp_path / "runs" / "submitit"
    jobs.mkdir(parents=True)
    jobs.chmod(0o777)
    with pytest.raises(UnsafePath, match="writable by others") as err:
        submit(tiny_toy(["mdm"]), "debug", runs_dir=tmp_path / "runs")
    assert str(jobs) in str(err.value) and list(jobs.iterdir()) == []
    jobs.chmod(0o755)
    assert ensure_private_directory(jobs / "debug", "job folder").stat().st_mode & 0o777 == 0o700
