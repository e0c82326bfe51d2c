"""A local reproduction: how many runs at once, bad input, its time table, a failed run,
and Ctrl-C."""

from __future__ import annotations

import os
import pdb
import signal
import subprocess
import sys
import time

import pytest
import torch

from benchmarks.cli import main as cli
from benchmarks.cli.main import main
from benchmarks.launch.plan import PlannedExperiment
from benchmarks.launch.profiles import load_profile
from benchmarks.launch.reproduction import default_parallel, format_time_table
from benchmarks.tasks.toy2d import Toy2D
from benchmarks.tracking.tracker import Tracker
from tests.helpers import mlflow_runs, sqlite, tiny_idle, tiny_toy
from tests.paths import REPO


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


# The first toy run of the Ctrl-C test trains long enough to be stopped mid-way.
LONG = {"train": {"steps": 400, "checkpoint_every": 1000, "log_every": 10}}


def _tiny_plan(toy=("mdm",), long_first=False):
    configs = tiny_toy(list(toy))
    if long_first:
        configs[0] = tiny_toy(toy[:1], LONG)[0]
    return [
        PlannedExperiment("idle-steps", tiny_idle(["mdm"])),
        PlannedExperiment("toy2d", configs),
    ]


def test_a_reproduction_with_a_failed_run_still_reports_the_rest_and_names_it(
    tmp_path, monkeypatch, capsys
):
    def broken(self, model, ctx):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr(Toy2D, "evaluate", broken)
    # submitit's in-process executor opens pdb on a failed job; a test has no terminal.
    monkeypatch.setattr(pdb, "post_mortem", lambda *args: None)
    monkeypatch.setattr(cli, "plan_experiments", lambda *args, **kwargs: _tiny_plan())
    uri, out = sqlite(tmp_path / "mlflow.db"), tmp_path / "results"
    args = ["reproduce", "--cluster", "debug", "--tracking-uri", uri, "--out", str(out)]
    assert cli.main([*args, "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "1 run(s) missing from the report" in err and "the evaluation broke" in err
    index = (out / "cpu" / "index.md").read_text()
    assert "table1_isr.md" in index  # the experiment that completed is reported
    missing = index.split("## Missing", 1)[1]
    assert "toy2d" in missing and "the evaluation broke" in missing
    assert not list((out / "cpu").glob("figure4_toy2d*"))


# `primebench reproduce` of three toy runs, the first of 400 steps; one run at a time.
_REPRODUCE = """
import sys
from benchmarks.cli import main as cli
from tests.benchmarks.launch.test_reproduction import _tiny_plan

plan = _tiny_plan(["mdm", "prime-l2-joint", "prime-l2-independent"], long_first=True)[1:]
cli.plan_experiments = lambda *args, **kwargs: plan
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_a_local_reproduction_and_the_same_command_resumes_it(tmp_path):
    """SIGINT to the process group of a running reproduction, as a terminal sends it."""
    uri, runs, out = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs", tmp_path / "results"
    argv = ["reproduce", "--parallel", "1", "--tracking-uri", uri, "--runs-dir", str(runs)]
    argv += ["--out", str(out)]
    command = [sys.executable, "-c", _REPRODUCE, *argv]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a command
    )
    (first,) = tiny_toy(["mdm"], LONG)
    others = tiny_toy(["prime-l2-joint", "prime-l2-independent"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until the first run has logged a few steps
        found = mlflow_runs(uri, first) if (tmp_path / "mlflow.db").exists() else []
        if found and Tracker(uri).client.get_metric_history(found[0].info.run_id, "train/loss"):
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "mdm interrupted in" in stdout and "failed" not in stdout
    assert f"toy2d/prime-l2-joint [{others[0].run_id}]: not started" in err
    assert f"to resume, run the same command: primebench {' '.join(argv)}" in err
    (run,) = mlflow_runs(uri, first)
    assert run.info.status == "KILLED" and run.data.tags["primebench.state"] == "interrupted"
    step = int(run.data.tags["primebench.step"])
    checkpoints = runs / first.run_id / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]  # no -v1 twin
    assert 0 < step < 400 and torch.load(checkpoints / "last.ckpt")["global_step"] == step
    assert not any(mlflow_runs(uri, c) for c in others)  # nothing started after Ctrl-C
    assert not out.exists()  # no report of a stopped reproduction

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    (resumed,) = mlflow_runs(uri, first)  # the same MLflow run, resumed
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert all(r.info.status == "FINISHED" for c in others for r in mlflow_runs(uri, c))
    assert (out / "cpu" / "figure4_toy2d.md").is_file()
