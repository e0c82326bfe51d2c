"""A local reproduction: how many runs at once, bad input, and its time table."""

from __future__ import annotations

from benchmarks.cli import main
from benchmarks.profiles import load_profile
from benchmarks.reproduction import default_parallel, format_time_table
from tests.helpers import sqlite


def test_a_local_reproduction_runs_two_at_once_when_there_are_two_cores_per_rank(monkeypatch):
    for cores, profile, expected in [(2, None, 2), (1, None, 1), (64, None, 2)]:
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert default_parallel(profile) == expected
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_parallel(load_profile("cpu-ddp")) == 1  # its two ranks take both cores


def test_a_reproduction_with_parallel_below_one_is_refused_before_anything_runs(tmp_path, capsys):
    args = ["reproduce", "--parallel", "0", "--runs-dir", str(tmp_path / "runs")]
    assert main([*args, "--tracking-uri", sqlite(tmp_path / "mlflow.db")]) == 2
    assert "--parallel: must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_reproduction_time_table_gives_each_step_its_share_of_the_total():
    rows = [("toy2d", 3, 1, 300.0, 540.0), ("report", 0, 0, 100.0, 100.0)]
    lines = format_time_table(rows, 500.0).splitlines()
    head = ["experiment", "runs", "skipped", "wall", "(s)", "share", "run", "(s)"]
    assert lines[0].split() == head
    assert lines[1].split() == ["toy2d", "3", "1", "300", "60%", "540"]
    assert lines[2].split() == ["report", "0", "0", "100", "20%", "100"]
    assert lines[3].split() == ["total", "500"]
