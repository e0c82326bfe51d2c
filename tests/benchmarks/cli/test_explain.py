"""Every setting is documented once, and ``primebench explain`` shows it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import pytest

from benchmarks.cli.explain import UNDOCUMENTED, describe, explain_runs, field_docs
from benchmarks.cli.main import main
from benchmarks.config.experiments import list_experiments, load_experiment
from benchmarks.config.run_config import RunConfig, UpstreamConfig
from benchmarks.config.train_config import TrainConfig
from benchmarks.launch.profiles import ClusterProfile
from benchmarks.registry import MODELS, TASKS


@dataclass(frozen=True)
class _Example:
    steps: int = 3
    """How many."""
    undocumented: bool = False
    name: str = "x"
    """A name,
    on two lines."""


def test_attribute_docstrings_are_read_from_the_source():
    assert field_docs(_Example) == {"steps": "How many.", "name": "A name,\non two lines."}
    infos = {i.key: i for i in describe(_Example(steps=5), "thing")}
    assert infos["thing.steps"].value == 5 and infos["thing.steps"].default == 3
    assert infos["thing.undocumented"].doc == ""


def _settings_classes() -> set[type]:
    """Every dataclass a user sets values of, nested ones included."""
    roots = [TrainConfig, UpstreamConfig, ClusterProfile]
    roots += [TASKS.get(n).Params for n in TASKS.names()]
    roots += [MODELS.get(n).Params for n in MODELS.names()]
    seen: set[type] = set()
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in seen or cls.__module__.startswith("tests"):
            continue
        seen.add(cls)
        for hint in typing.get_type_hints(cls).values():
            for arg in (hint, *typing.get_args(hint)):
                if dataclasses.is_dataclass(arg):
                    todo.append(arg)
    return seen


def test_every_user_settable_field_has_a_docstring():
    missing = [
        f"{cls.__module__}.{cls.__name__}.{f.name}"
        for cls in _settings_classes()
        for f in dataclasses.fields(cls)
        if f.init and f.name not in field_docs(cls)
    ]
    assert not missing, missing
    run_fields = {f.name for f in dataclasses.fields(RunConfig)} - {"task", "model", "train"}
    assert run_fields <= set(field_docs(RunConfig))


@pytest.mark.parametrize("name", list_experiments())
def test_explain_shows_every_setting_of_every_experiment(name):
    exp = load_experiment(name)
    configs = exp.resolve(sorted({"cpu", *exp.reproduce, *exp.scales})[0])
    text = explain_runs(configs)
    for key in set(configs[0].flat_params()) - {"experiment", "variant", "scale"}:
        assert f" {key} = " in text, key
    assert UNDOCUMENTED not in text


def test_the_explain_command(capsys):
    assert main(["explain", "toy2d", "--variant", "mdm", "--set", "train.steps=7"]) == 0
    out = capsys.readouterr().out
    assert "* train.steps = 7" in out and "toy2d [mdm]" in out
    assert main(["explain", "toy2d", "--variant", "mdm", "--set", "seeds=[4, 5]"]) == 0
    out = capsys.readouterr().out
    assert "2 runs of 1 variant; the settings in which they differ:" in out
    assert "  mdm: seed=4\n  mdm: seed=5\n" in out
    assert main(["explain", "model:prime"]) == 0
    assert "model.ell = 2" in capsys.readouterr().out
    assert main(["explain", "model:nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
