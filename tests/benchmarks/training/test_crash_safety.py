"""A crash at the wrong moment loses nothing and doubles nothing; a non-finite loss stops
the run: atomic checkpoint writes, fall back from a damaged ``last.ckpt``, evaluation
metrics logged once, a failed run marked with its step and last finite loss."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import torch

from benchmarks.registry import MODELS, TASKS
from benchmarks.runtime.preemption import SIGNAL_AT_STEP_ENV, Interrupted
from benchmarks.tracking.tracker import Tracker
from benchmarks.training import checkpoint_writer
from benchmarks.training.checkpoint_writer import CheckpointWriteError, write_atomically
from benchmarks.training.checkpoints import CheckpointError, resume_checkpoint
from benchmarks.training.finite_loss import FiniteLossGuard, NonFiniteLoss
from benchmarks.training.runner import execute
from tests.helpers import mlflow_runs, sqlite, tiny_toy

EVERY_STEP = {"train": {"checkpoint_every": 1, "keep_checkpoints": True}}


def _points(uri: str, run) -> dict[str, list[int]]:
    client = Tracker(uri).client
    return {
        k: [m.step for m in client.get_metric_history(run.info.run_id, k)] for k in run.data.metrics
    }


def test_a_failed_checkpoint_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    write_atomically({"step": 1}, path)
    before = path.read_bytes()

    def disk_full(obj, handle):
        handle.write(b"x" * 1000)  # part of the file reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_writer.torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError, match="no space left") as err:
        write_atomically({"step": 2}, path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_checkpoint_write_replaces_a_planted_symlink_and_spares_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    path.symlink_to(victim)
    write_atomically({"step": 3}, path)
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and torch.load(path, weights_only=True) == {"step": 3}


def test_temporaries_of_a_killed_writer_are_removed(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / f".last.ckpt.1a2b3c4d{checkpoint_writer.TEMP_SUFFIX}").write_bytes(b"half")
    (folder / "last.ckpt").write_bytes(b"kept")
    assert [p.name for p in checkpoint_writer.remove_temporaries(folder)] == [
        f".last.ckpt.1a2b3c4d{checkpoint_writer.TEMP_SUFFIX}"
    ]
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]


def _write(path: Path, step: int) -> None:
    write_atomically({"global_step": step}, path)


def test_resume_takes_the_newest_whole_checkpoint(tmp_path):
    folder = tmp_path / "runs" / "abc" / "checkpoints"
    for step in (2, 4):
        _write(folder / f"step{step:08d}.ckpt", step)
    assert resume_checkpoint(folder) == (
        folder / "step00000004.ckpt",
        "there is no last.ckpt; resuming from step00000004.ckpt (step 4), the newest whole one",
    )
    _write(folder / "last.ckpt", 4)
    assert resume_checkpoint(folder) == (folder / "last.ckpt", None)
    (folder / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    (folder / "step00000004.ckpt").write_bytes(b"")
    path, note = resume_checkpoint(folder)
    assert path == folder / "step00000002.ckpt" and "last.ckpt" in note and "truncated" in note
    (folder / "step00000002.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no whole periodic checkpoint"):
        resume_checkpoint(folder)
    assert not (tmp_path / "empty").exists() and resume_checkpoint(tmp_path / "empty") == (
        None,
        None,
    )


def test_a_truncated_last_checkpoint_resumes_from_the_newest_whole_one(
    tmp_path, monkeypatch, caplog
):
    (config,) = tiny_toy(["prime-l2-joint"], EVERY_STEP)
    reference = execute(config, sqlite(tmp_path / "reference.db"), tmp_path / "reference")
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    monkeypatch.setenv(SIGNAL_AT_STEP_ENV, "3:SIGTERM")
    with pytest.raises(Interrupted):
        execute(config, uri, runs)
    monkeypatch.delenv(SIGNAL_AT_STEP_ENV)
    last = runs / config.run_id / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])  # as a copy cut short by a kill would be
    with caplog.at_level("WARNING", logger="primebench"):
        resumed = execute(config, uri, runs)
    assert "resuming from step00000003.ckpt (step 3)" in caplog.text
    assert resumed["metrics"] == reference["metrics"]
    (run,) = mlflow_runs(uri, config)
    for name, steps in _points(uri, run).items():
        assert len(steps) == len(set(steps)), name
    assert max(_points(uri, run)["train/loss"]) == 5


def test_evaluation_metrics_are_logged_once_when_a_later_step_fails(tmp_path, monkeypatch):
    (config,) = tiny_toy(["mdm"])
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    upload = Tracker.log_artifacts

    def fails(self, run_id, paths):
        raise OSError(errno.EIO, "artifact store unreachable")

    monkeypatch.setattr(Tracker, "log_artifacts", fails)
    with pytest.raises(OSError, match="artifact store"):
        execute(config, uri, runs)
    (failed,) = mlflow_runs(uri, config)
    assert failed.info.status == "FAILED"
    assert "artifact store unreachable" in failed.data.tags["primebench.error"]
    monkeypatch.setattr(Tracker, "log_artifacts", upload)
    result = execute(config, uri, runs)
    (run,) = mlflow_runs(uri, config)
    assert run.info.status == "FINISHED" and not result["skipped"]
    points = _points(uri, run)
    assert all(len(steps) == len(set(steps)) for steps in points.values()), points
    assert all(points[name] == [0] for name in result["metrics"])


def test_guard_counts_non_finite_losses_in_a_row():
    guard = FiniteLossGuard(patience=3)
    assert not guard.check(0, 2.5)
    assert not guard.check(1, math.nan) and not guard.check(2, math.inf)
    assert not guard.check(3, 2.0)  # a finite step resets the count
    assert [guard.check(s, math.nan) for s in (4, 5, 6)] == [False, False, True]
    restored = FiniteLossGuard(3)
    restored.load_state_dict(guard.state_dict())
    assert restored.last_finite == (3, 2.0) and restored.in_a_row == 3
    with pytest.raises(ValueError, match="patience"):
        FiniteLossGuard(0)


def test_a_non_finite_loss_stops_the_run_and_marks_it_failed(tmp_path, monkeypatch):
    (config,) = tiny_toy(["mdm"])
    task = TASKS.get(config.task.name)(config.task.params, config)
    cls = type(MODELS.get(config.model.name).build(config.model.params, task.data_spec()))
    original, calls = cls.training_loss, []

    def diverges(self, x0, generator, shard=None):
        loss, parts = original(self, x0, generator, shard=shard)
        calls.append(float(loss.detach()))
        return (loss * math.nan if len(calls) > 3 else loss), parts

    monkeypatch.setattr(cls, "training_loss", diverges)
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    with pytest.raises(NonFiniteLoss, match="at step 3") as err:
        execute(config, uri, runs)
    assert err.value.last_finite == (2, pytest.approx(calls[2], rel=1e-6))
    (run,) = mlflow_runs(uri, config)
    tags = run.data.tags
    assert run.info.status == "FAILED" and tags["primebench.state"] == "failed"
    assert tags["primebench.failed_step"] == "3" and tags["primebench.last_finite_step"] == "2"
    assert float(tags["primebench.last_finite_loss"]) == pytest.approx(calls[2], rel=1e-6)
    assert "primebench.complete" not in tags
    folder = runs / config.run_id / "checkpoints"
    assert (folder / "nonfinite-step00000003.ckpt").is_file()
    assert all(math.isfinite(v) for v in _losses(uri, run))  # no NaN point was logged


def _losses(uri: str, run) -> list[float]:
    return [m.value for m in Tracker(uri).client.get_metric_history(run.info.run_id, "train/loss")]


def test_a_full_disk_is_a_clear_error_and_the_run_resumes_once_space_is_back(tmp_path, monkeypatch):
    (config,) = tiny_toy(["mdm"], EVERY_STEP)
    reference = execute(config, sqlite(tmp_path / "reference.db"), tmp_path / "reference")
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"
    save, writes = torch.save, []

    def fills_up(obj, handle):
        writes.append(1)
        if len(writes) > 5:  # the disk fills during the sixth checkpoint
            handle.write(b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        save(obj, handle)

    monkeypatch.setattr(checkpoint_writer.torch, "save", fills_up)
    with pytest.raises(CheckpointWriteError, match="no space left on the device") as err:
        execute(config, uri, runs)
    assert str(runs / config.run_id / "checkpoints") in str(err.value)
    (failed,) = mlflow_runs(uri, config)
    assert failed.info.status == "FAILED" and "no space" in failed.data.tags["primebench.error"]
    folder = runs / config.run_id / "checkpoints"
    assert not list(folder.glob(".*")), "a partial file was left behind"
    for path in folder.iterdir():
        torch.load(path, weights_only=True)  # every file there is whole

    monkeypatch.setattr(checkpoint_writer.torch, "save", save)  # space is back
    resumed = execute(config, uri, runs)
    assert resumed["metrics"] == reference["metrics"]
    (run,) = mlflow_runs(uri, config)
    assert run.info.run_id == failed.info.run_id and run.info.status == "FINISHED"
    assert all(len(s) == len(set(s)) for s in _points(uri, run).values())


def test_a_killed_writers_temporaries_are_gone_after_the_next_start(tmp_path):
    (config,) = tiny_toy(["mdm"])
    runs = tmp_path / "runs"
    planted = [
        runs / config.run_id / "checkpoints" / f".last.ckpt.1a2b{checkpoint_writer.TEMP_SUFFIX}",
        runs
        / config.run_id
        / "artifacts"
        / f".per_block_nll.npz.3c4d{checkpoint_writer.TEMP_SUFFIX}",
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"cut short by a kill")
    execute(config, sqlite(tmp_path / "mlflow.db"), runs)
    assert not [p for p in planted if p.exists()]
