"""No command waits for a person who is not there: a failed run raises (no pdb prompt)
and every error is one line naming the setting or file, the traceback only with
``--debug``."""

from __future__ import annotations

import functools
import os
import pdb
import signal
import subprocess
import sys
import textwrap

import pytest
import submitit

from benchmarks.cli import main as cli
from benchmarks.cli.main import main
from benchmarks.launch.job_errors import one_line
from benchmarks.launch.pool import Outcome
from benchmarks.launch.submission import LaunchError, collect
from benchmarks.runtime.lease import RunLease
from benchmarks.runtime.preemption import Terminated
from benchmarks.tasks.toy2d import Toy2D
from tests.helpers import TINY_TOY, as_overrides, sqlite, tiny_toy
from tests.paths import REPO

TINY = [arg for item in as_overrides(TINY_TOY) for arg in ("--set", item)]


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("primebench: error:")]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A tracking URI in ``tmp_path``, which is also the working directory."""
    monkeypatch.chdir(tmp_path)
    return ["--tracking-uri", sqlite(tmp_path / "mlflow.db")]


@pytest.fixture
def broken_evaluation(monkeypatch):
    def broken(self, model, ctx):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr(Toy2D, "evaluate", broken)


@pytest.fixture
def debugger(monkeypatch):
    """Every call of ``pdb.post_mortem`` (recorded, not opened)."""
    calls: list[tuple] = []
    monkeypatch.setattr(pdb, "post_mortem", lambda *args: calls.append(args))
    return calls


def test_a_run_that_fails_in_this_process_raises_without_opening_pdb(
    store, broken_evaluation, debugger, capfd
):
    assert main(["run", "toy2d", "--variant", "mdm", *TINY, *store]) == 2
    err = capfd.readouterr().err
    assert not debugger and "Traceback" not in err
    (config,) = tiny_toy(["mdm"])
    assert f"mdm [{config.run_id}]: RuntimeError: the evaluation broke" in err
    assert len(_errors(err)) == 1


def test_with_debug_a_failed_run_opens_pdb_and_the_traceback_is_printed(
    store, broken_evaluation, debugger, capfd
):
    assert main(["--debug", "run", "toy2d", "--variant", "mdm", *TINY, *store]) == 2
    assert len(debugger) == 1  # submitit's in-process executor, for a person at a terminal
    assert "Traceback (most recent call last)" in capfd.readouterr().err


def test_a_set_value_that_is_not_yaml_is_named_in_one_line(store, capfd):
    assert main(["run", "toy2d", "--set", "train.lr=[1,", *store]) == 2
    err = capfd.readouterr().err
    assert _errors(err) == [
        "primebench: error: --set 'train.lr=[1,': not valid YAML: expected the node "
        "content, but found '<stream end>' at column 4"
    ]
    assert "Traceback" not in err
    assert main(["run", "toy2d", "--set", "train.lr=[1,", *store, "--debug"]) == 2
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err and len(_errors(err)) == 1


def test_a_runs_dir_that_is_a_file_is_named_before_anything_is_written(tmp_path, store, capfd):
    (tmp_path / "taken").write_text("not a directory")
    assert main(["run", "toy2d", "--runs-dir", "taken", *TINY, *store]) == 2
    assert main(["status", "toy2d", "--runs-dir", "taken/runs", *store]) == 2
    err = capfd.readouterr().err
    assert _errors(err) == [
        "primebench: error: --runs-dir taken: is not a directory",
        "primebench: error: --runs-dir taken/runs: is under taken, which is not a directory",
    ]
    assert "Traceback" not in err and not (tmp_path / "mlflow.db").exists()


def test_an_out_dir_that_is_a_file_is_named(tmp_path, store, capfd):
    (tmp_path / "results").write_text("")
    assert main(["report", "--out", "results", *store]) == 2
    assert _errors(capfd.readouterr().err) == [
        "primebench: error: --out results: is not a directory"
    ]


def test_a_tracking_uri_mlflow_cannot_use_is_named_in_one_line(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "toy2d", "--tracking-uri", "ftp://x", *TINY]) == 2
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://y")
    assert main(["report"]) == 2
    assert main(["status", "toy2d", "--tracking-uri", f"file://{tmp_path}/store"]) == 2
    err = capfd.readouterr().err
    lines = _errors(err)
    assert "Traceback" not in err and len(lines) == 3
    assert lines[0].startswith("primebench: error: --tracking-uri 'ftp://x': MLflow has no")
    assert lines[1].startswith("primebench: error: MLFLOW_TRACKING_URI 'ftp://y': MLflow has no")
    assert f"'file://{tmp_path}/store'" in lines[2] and "sqlite:///" in lines[2]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_busy_run_under_if_busy_exit_names_its_holder_in_one_line(tmp_path, store, capfd):
    (config,) = tiny_toy(["mdm"])
    with RunLease(tmp_path / "runs" / config.run_id) as lease:
        assert lease.try_acquire()  # held here, as another process would hold it
        args = ["run", "toy2d", "--variant", "mdm", "--if-busy", "exit", *TINY, *store]
        assert main(args) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and "(Pdb)" not in err and len(_errors(err)) == 1
    expected = f"mdm [{config.run_id}]: RunBusy: run {config.run_id} is being run by"
    assert expected in err and f"{os.getpid()}" in err
    assert str(tmp_path / "runs" / config.run_id / "lease") in err


def test_a_failed_local_job_is_one_line_with_its_log_not_its_traceback(tmp_path):
    """submitit's error of a failed process holds the job's whole traceback."""
    executor = submitit.LocalExecutor(folder=str(tmp_path))
    job = executor.submit(functools.partial(int, "not a number"))
    with pytest.raises(LaunchError) as raised:
        collect(job)
    assert "Traceback (most recent call last)" in str(raised.value)
    (config,) = tiny_toy(["mdm"])
    error = str(one_line(Outcome(config, error=raised.value)).error)
    assert error == (
        "ValueError: invalid literal for int() with base 10: 'not a number' "
        f"(log: {job.paths.stderr})"
    )


def test_an_unexpected_exception_is_one_internal_error_line(store, monkeypatch, capfd):
    def broken(args):
        raise KeyError("no such key")

    monkeypatch.setitem(cli.COMMANDS, "list", broken)
    assert main(["list"]) == 1
    err = capfd.readouterr().err
    assert err.splitlines() == [
        "primebench: internal error: KeyError: 'no such key' "
        "(run again with --debug for the traceback)"
    ]
    assert main(["list", "--debug"]) == 1
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "primebench: internal error: KeyError: 'no such key'"


# A toy2d task whose evaluation fails, for the job of a fresh interpreter.
_PLUGIN = """
from benchmarks.tasks.toy2d import Toy2D

def broken(self, model, ctx):
    raise RuntimeError("the evaluation broke")

Toy2D.evaluate = broken
"""


@pytest.mark.slow
def test_a_failed_run_started_from_a_script_ends_instead_of_waiting_at_pdb(tmp_path):
    """stdin is a pipe that no one writes to, as a script's or a service's: a pdb
    prompt would wait on it until the timeout."""
    (tmp_path / "broken_eval.py").write_text(textwrap.dedent(_PLUGIN))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    argv = ["run", "toy2d", "--variant", "mdm", *TINY, "--set", "plugins=[broken_eval]"]
    argv += ["--tracking-uri", sqlite(tmp_path / "mlflow.db"), "--runs-dir", "runs"]
    reader, writer = os.pipe()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.cli.main", *argv],
            stdin=reader,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=240,
        )
    finally:
        os.close(reader)
        os.close(writer)
    assert done.returncode == 2, done.stderr
    assert "(Pdb)" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(_errors(done.stderr)) == 1 and "RuntimeError: the evaluation broke" in done.stderr


def test_sigterm_outside_training_ends_with_one_line_and_143(store, monkeypatch, capfd):
    def terminated(args):
        raise Terminated()

    monkeypatch.setitem(cli.COMMANDS, "list", terminated)
    assert main(["list"]) == 128 + signal.SIGTERM
    (line,) = capfd.readouterr().err.splitlines()
    assert line.startswith("primebench: terminated (SIGTERM)")
