"""The real images' feature cache under concurrent runs: every entry is computed by one
process, runs that arrive together split the entries, and a damaged entry is reported."""

import multiprocessing
import threading
import time

import numpy as np
import pytest

from benchmarks.metrics.fid_reference import (
    _entry_lock,
    reference_entry,
    reference_features,
    share_references,
)
from tests.helpers import StandInFeatures


class SlowLoggedFeatures(StandInFeatures):
    """The stand-in extractor, slowed down, appending the label of every set it computes
    to a log file (one line per call, from whichever process made it)."""

    def __init__(self, log, seconds: float = 0.3):
        super().__init__()
        self.log, self.seconds = log, seconds

    def __call__(self, images, desc: str = "features"):
        time.sleep(self.seconds)
        with open(self.log, "a") as f:
            f.write(desc + "\n")
        return super().__call__(images, desc)


def _sets():
    rng = np.random.default_rng(0)
    shape = (8, 1, 28, 28)
    return [(rng.integers(0, 256, shape, dtype=np.uint8), name) for name in ("ref", "ref-floor")]


def _run(cache, log, out, index) -> None:
    extractor = SlowLoggedFeatures(log)
    sets = _sets()
    computed = share_references(sets, extractor, cache)
    features = [reference_features(images, extractor, cache, label) for images, label in sets]
    np.savez(out / f"{index}.npz", *features, computed=computed)


@pytest.mark.slow  # four processes: a system test
def test_concurrent_runs_compute_every_set_once_and_agree(tmp_path):
    log, out = tmp_path / "calls.log", tmp_path / "out"
    out.mkdir()
    # Spawned, not forked: a child forked from a process whose BLAS/OpenMP threads have
    # run (as pytest's have, after earlier tests) can deadlock in its first matmul.
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_run, args=(tmp_path / "cache", log, out, i), daemon=True)
        for i in range(4)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(180)
            assert worker.exitcode == 0
    finally:
        for worker in workers:  # a hung child must not hold up pytest's exit
            if worker.is_alive():
                worker.kill()
    assert sorted(log.read_text().splitlines()) == ["ref features", "ref-floor features"]
    results = [np.load(out / f"{i}.npz") for i in range(4)]
    assert sum(int(r["computed"]) for r in results) == 2
    for r in results[1:]:
        for key in ("arr_0", "arr_1"):
            assert np.array_equal(r[key], results[0][key])


def test_a_set_another_process_is_computing_is_left_to_it(tmp_path):
    log = tmp_path / "calls.log"
    extractor = SlowLoggedFeatures(log, seconds=0.0)
    (ref, ref_label), (floor, floor_label) = _sets()
    entry = reference_entry(ref, extractor, tmp_path, ref_label)
    with _entry_lock(entry, wait=True) as held:  # another holder: a separate open file
        assert held
        assert share_references([(ref, ref_label), (floor, floor_label)], extractor, tmp_path) == 1
        assert log.read_text() == "ref-floor features\n"
        waited = []
        waiter = threading.Thread(
            target=lambda: waited.append(reference_features(ref, extractor, tmp_path, ref_label))
        )
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive()  # waits for the holder rather than computing beside it
        np.save(entry, extractor(ref))  # what the holder publishes
    waiter.join(10)
    assert len(waited) == 1 and np.array_equal(waited[0], np.load(entry))
    assert log.read_text().count("features") == 2  # the waiter computed nothing


def test_a_damaged_entry_is_reported_with_its_file(tmp_path):
    extractor = StandInFeatures()
    (ref, label), _ = _sets()
    entry = reference_entry(ref, extractor, tmp_path, label)
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"")
    with pytest.raises(RuntimeError, match=f"{entry.name}.*not a readable feature cache"):
        reference_features(ref, extractor, tmp_path, label)
    np.save(entry, np.zeros((3, 32)))  # features of another number of images
    with pytest.raises(RuntimeError, match=r"shape \(3, 32\); expected 8 rows"):
        reference_features(ref, extractor, tmp_path, label)
    assert entry.is_file()  # reported, not overwritten
