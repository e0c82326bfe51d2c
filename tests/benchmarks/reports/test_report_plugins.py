"""A report runs only the user's own code: the ``plugins`` a stored run lists (in its
config, an ``upstream`` file path or its overrides) are read as data and never imported,
while the ``plugins:`` of this installation's own experiment files are. A run whose task or
model stays unregistered is listed under "Not rendered" with the modules it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.config import experiments
from benchmarks.config.run_config import RunConfig
from benchmarks.reports import render
from tests.benchmarks.reports.report_store import Store, probe, probe_store, report


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    return probe_store(tmp_path, monkeypatch)


def _module(directory: Path, name: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(body)


def test_a_report_imports_no_plugin_a_stored_run_lists(store, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    code = tmp_path / "code"
    _module(code, "evil_module", f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    monkeypatch.syspath_prepend(str(code))
    evil_file = tmp_path / "evil.yaml"
    evil_file.write_text("plugins: [evil_module]\ndefaults: {task: {name: toy2d}}\n")
    plugins = {"plugins": ["evil_module"]}
    kept = store.add(probe("kept", "probe_kept", **plugins))
    task = store.add({**probe("x"), "task": {"name": "evil-task"}, **plugins})
    model = store.add({**probe("y"), "model": {"name": "evil-model"}, **plugins})
    by_path = store.add(probe("z", upstream={"experiment": str(evil_file)}))
    by_override = store.add(
        probe("w", upstream={"experiment": "toy2d", "overrides": ["plugins=[evil_module]"]})
    )
    out = report(tmp_path)
    assert not marker.exists() and "evil_module" not in sys.modules
    # A registered task renders, its stored plugins kept as names only.
    assert "| kept |" in (out / "probe_kept.md").read_text()
    index = (out / "index.md").read_text()
    skipped = index.split("## Not rendered")[1]
    assert kept not in skipped
    lines = {run: next(s for s in skipped.splitlines() if run in s) for run in (task, model)}
    assert "task 'evil-task' not registered here" in lines[task]
    assert "model 'evil-model' not registered here" in lines[model]
    assert all("plugin module(s) evil_module" in line for line in lines.values())
    assert f"MLflow run {by_path} (probe/z, seed 0)" in skipped
    assert "is not an experiment of this installation" in skipped
    assert f"MLflow run {by_override}" in skipped and "sets plugins" in skipped
    # The planted module does run code when imported: validating the stored config as a
    # job would (RunConfig.from_dict) imports it.
    RunConfig.from_dict(probe("kept", **plugins))
    assert marker.exists()
    sys.modules.pop("evil_module")


def test_the_plugins_of_the_users_own_experiment_files_are_imported(store, tmp_path, monkeypatch):
    code, mine = tmp_path / "code", tmp_path / "experiments"
    marker = tmp_path / "stored-module-imported"
    _module(code, "listed_in_store", f"open({str(marker)!r}, 'w').close()\n")
    _module(
        code,
        "users_plugin",
        "from benchmarks.registry import TASKS\nfrom benchmarks.reports.render import renderer\n"
        "from tests.benchmarks.reports.report_store import Probe, probe_tables\n"
        "TASKS.register('users-task')(type('UsersTask', (Probe,), {}))\n"
        "renderer('users-task')(probe_tables)\n",
    )
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setattr(render, "RENDERERS", dict(render.RENDERERS))
    mine.mkdir()
    (mine / "mine.yaml").write_text("plugins: [users_plugin]\ndefaults: {task: {name: x}}\n")
    monkeypatch.setattr(experiments, "EXPERIMENTS_DIR", mine)
    config = {**probe("v", "users_table"), "plugins": ["listed_in_store"]}
    store.add({**config, "task": {"name": "users-task", "tables": ["users_table"]}})
    out = report(tmp_path)
    assert "| v |" in (out / "users_table.md").read_text()
    assert "Not rendered" not in (out / "index.md").read_text()
    assert not marker.exists()
    sys.modules.pop("users_plugin")
