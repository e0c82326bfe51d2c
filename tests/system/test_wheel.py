"""The suite as an installed (non-editable) wheel: packaged data, outputs under the cwd.

A wheel is built from a copy of the checkout (setuptools writes ``build/`` and
``*.egg-info`` into the folder it builds, which would dirty the tree), its file list is
checked for the experiment files, cluster profiles and paper tables, and it is installed
with ``--no-deps`` into a fresh venv. The fresh venv sees the development venv's
dependencies through a ``.pth`` line appended after its own site-packages, so
``benchmarks``, ``prime`` and ``baselines`` come from the wheel (the ``.pth`` files of the
development venv, among them its editable-install finder, are not run). The installed
``primebench`` then lists, runs and reports from an unrelated working directory; every
output must land there, none in the venv or the repository.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.paths import REPO

pytestmark = pytest.mark.slow

EXPERIMENT = "idle-steps"  # simulates the sampler, trains nothing: a few seconds
_TOOL_CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache")
RUN_ARGS = ["--variant", "mdm", "--set", "task.runs=2", "--set", "task.steps=[1024]"]


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout=300):
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _repo_state() -> tuple[frozenset[str], dict[str, int]]:
    """What a stray write into the checkout would change: git's view (ignored files such as
    ``mlflow.db`` and ``runs/`` included) and the mtimes under ``results/``. Left out, so
    that edits and test runs going on in the same checkout do not fail this test: Python
    sources (the suite writes none) and the caches of Python and of the dev tools."""
    status = _run(["git", "status", "--porcelain", "--ignored"], cwd=REPO).splitlines()
    status = [
        line
        for line in status
        if not line.rstrip("/").endswith(_TOOL_CACHES) and not line.endswith(".py")
    ]
    mtimes = {str(p.relative_to(REPO)): p.stat().st_mtime_ns for p in (REPO / "results").rglob("*")}
    return frozenset(status), mtimes


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _expected_data_files() -> set[str]:
    experiments = (REPO / "benchmarks" / "experiments").glob("*.yaml")
    profiles = (REPO / "slurm").glob("*.yaml")
    paper = [*(REPO / "results" / "paper").glob("*.csv"), REPO / "results" / "paper" / "README.md"]
    return (
        {f"benchmarks/experiments/{p.name}" for p in experiments}
        | {f"benchmarks/_data/profiles/{p.name}" for p in profiles}
        | {f"benchmarks/_data/paper/{p.name}" for p in paper}
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of the repository")
    src = tmp_path_factory.mktemp("src")
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO)
    for name in filter(None, listed.split("\0")):
        path = REPO / name
        if path.is_symlink():  # the package's links to slurm/ and results/paper/
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), src / name)
        elif path.is_file():  # tracked files deleted in the working tree are left out
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src]
    setuptools = importlib.metadata.version("setuptools")
    if int(setuptools.split(".")[0]) >= 77:  # build-system.requires; else pip fetches it
        cmd.insert(5, "--no-build-isolation")
    _run(cmd, cwd=src)
    (path,) = dist.glob("primebench-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root)
    python = root / "bin" / "python"
    paths = json.loads(
        _run([python, "-c", "import json, sysconfig as s; print(json.dumps(s.get_paths()))"], root)
    )
    site = Path(paths["purelib"])
    pip = [sys.executable, "-m", "pip", "--python", python]
    _run([*pip, "install", "-q", "--no-deps", "--no-index", wheel], cwd=root)
    # After the venv's own site-packages: the wheel's packages win over the source tree.
    dev = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_primebench_dev_deps.pth").write_text("".join(f"{p}\n" for p in dev))
    return {"root": root, "python": python, "site": site, "bin": root / "bin"}


def test_wheel_ships_experiments_profiles_and_paper_tables(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _expected_data_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"benchmarks", "prime", "baselines"}  # no slurm/, results/, tests/


def test_installed_cli_writes_only_under_the_working_directory(
    venv: dict[str, Path], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the interpreter's caches are not the suite's writes
    env["PATH"] = f"{venv['bin']}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()
    repo_before = _repo_state()
    venv_before = _tree_state(venv["root"])

    where = json.loads(
        _run(
            [
                venv["python"],
                "-c",
                "import json, baselines, benchmarks, prime; from benchmarks import resources as r;"
                "print(json.dumps([baselines.__file__, benchmarks.__file__, prime.__file__,"
                " str(r.experiments_dir()), str(r.profiles_dir()), str(r.paper_dir())]))",
            ],
            cwd=work,
            env=env,
        )
    )
    package = venv["site"] / "benchmarks"
    for path in where:
        assert Path(path).is_relative_to(venv["site"]), f"{path} is not from the installed wheel"
    data = [package / "experiments", package / "_data" / "profiles", package / "_data" / "paper"]
    assert where[3:] == [str(p) for p in data]

    primebench = venv["bin"] / "primebench"
    listing = _run([primebench, "list"], cwd=work, env=env)
    for exp in (REPO / "benchmarks" / "experiments").glob("*.yaml"):
        assert exp.stem in listing
    profiles = ", ".join(sorted(p.stem for p in (REPO / "slurm").glob("*.yaml")))
    assert f"cluster profiles: {profiles}" in listing

    ran = _run([primebench, "run", EXPERIMENT, *RUN_ARGS], cwd=work, env=env)
    assert " done " in ran
    reported = _run([primebench, "report", "--scale", "cpu"], cwd=work, env=env)
    assert "table1_isr.md" in reported
    _run([primebench, "report", "--scale", "cpu", "--out", "elsewhere"], cwd=work, env=env)

    assert (work / "mlflow.db").is_file()
    assert any((work / "runs").iterdir())
    assert (work / "results" / "cpu" / "index.md").is_file()
    assert (work / "elsewhere" / "cpu" / "table1_isr.md").is_file()
    # The paper's number in the report proves the packaged tables were read.
    isr = pd.read_csv(REPO / "results" / "paper" / "isr.csv", comment="#").set_index("ell")
    table = (work / "results" / "cpu" / "table1_isr.md").read_text()
    assert f"{isr.loc[1, 'isr_percent']:.2f}%" in table

    assert _tree_state(venv["root"]) == venv_before, "the suite wrote into the venv"
    status_before, mtimes_before = repo_before
    status_after, mtimes_after = _repo_state()
    assert status_after - status_before == set(), "the suite wrote into the repository"
    assert mtimes_after == mtimes_before, "the suite wrote into the repository"
