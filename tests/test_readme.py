"""The README's examples run as written, so the guide cannot drift from the code: its
Python blocks are executed and its harness commands are run (on tiny settings)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import TINY_TOY, as_overrides
from tests.paths import REPO

README = (REPO / "README.md").read_text()
# the options each command of the harness example accepts for its store and folders
_PLACES = {"run", "sweep", "status", "report"}


def _block(section: str, language: str) -> str:
    """The first ``language`` code block under the ``## section`` heading."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"```{language}\n(.*?)```", body, re.S)
    assert found, f"no {language} block under '## {section}'"
    return found.group(1)


def test_the_core_example_runs_and_prints_what_its_comments_say():
    code = _block("Using the core", "python")
    namespace: dict = {}
    exec(compile(code, "README.md: Using the core", "exec"), namespace)
    assert namespace["losses"].valid_bound.shape == namespace["x0"].shape
    # the comment after the idle-steps call is its value
    call, said = re.search(
        r"^(prime\.expected_idle_steps\(.*\))\s+# ([\d.]+)$", code, re.M
    ).groups()
    assert round(eval(call, namespace), 1) == float(said)


@pytest.mark.slow
def test_the_model_example_registers_its_model(tmp_path):
    code = _block("Adding a model, a task or a table", "python")
    (tmp_path / "my_model.py").write_text(code)
    check = textwrap.dedent(
        """
        import my_model
        from benchmarks.registry import MODELS
        assert MODELS.get("my-model") is my_model.MyModel
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_the_harness_commands_run(tmp_path):
    """Each command of the harness example, from a fresh working directory, with the tiny
    toy settings after the README's own (later --set values win)."""
    tiny = [arg for item in as_overrides(TINY_TOY) for arg in ("--set", item)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lines = [ln.split("#")[0].strip() for ln in _block("Using the harness", "bash").splitlines()]
    for line in filter(None, lines):
        argv = shlex.split(line)
        assert argv[0] == "primebench", line
        command = argv[1]
        if command in {"run", "sweep"}:
            argv += tiny
        if command in _PLACES:
            argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
        if command in _PLACES - {"report"}:
            argv += ["--runs-dir", str(tmp_path / "runs")]
        cli = [sys.executable, "-m", "benchmarks.cli.main", *argv[1:]]
        done = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
    assert (tmp_path / "results" / "cpu" / "figure4_toy2d.md").is_file()
