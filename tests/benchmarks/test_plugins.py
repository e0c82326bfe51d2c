"""A variant in the user's own package: found through the ``primebench.models``
entry-point group or an experiment file's ``plugins:``, in-process and in a job."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from benchmarks.config.experiments import load_experiment
from benchmarks.config.run_config import RunConfig
from benchmarks.core import ConfigError
from benchmarks.launch.launcher import launch
from benchmarks.registry import MODELS
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.runner import execute
from tests.helpers import TINY_TOY

PACKAGE = '''
"""A third-party MDM variant: the toy MLP with a cosine schedule."""
from dataclasses import dataclass, field

from baselines import build_mdm
from benchmarks.models.backbone_params import ToyMLPParams, build_backbone
from benchmarks.core import ModelEntry
{register_import}


@dataclass(frozen=True)
class CosineParams:
    backbone: ToyMLPParams = field(default_factory=ToyMLPParams)


{decorator}
class CosineMDM(ModelEntry):
    Params = CosineParams

    @classmethod
    def build(cls, params, data):
        c = data.num_classes
        return build_mdm(build_backbone(params.backbone, data, 1, c, c), c, "cosine")
'''


def _write_package(root, name, entry_point=None):
    """``root/name/__init__.py``; with ``entry_point``, also the installed metadata
    (a dist-info folder) that registers it under that name."""
    if entry_point:
        source = PACKAGE.format(register_import="", decorator="")
        info = root / f"{name}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(
            f"[primebench.models]\n{entry_point} = {name}:CosineMDM\n"
        )
    else:
        source = PACKAGE.format(
            register_import="from benchmarks.registry import MODELS",
            decorator=f'@MODELS.register("{name}")',
        )
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(textwrap.dedent(source))


def _experiment(tmp_path, model: str, plugins: list[str] | None = None):
    base = yaml.safe_load((load_experiment("toy2d").path).read_text())
    defaults = base["defaults"]
    defaults["model"] = {"name": model, "backbone": TINY_TOY["model"]["backbone"]}
    defaults["train"] = {**defaults.get("train", {}), **TINY_TOY["train"]}
    defaults["task"] = {**defaults["task"], **TINY_TOY["task"]}
    doc = {"description": "a plugin model", "defaults": defaults}
    if plugins:
        doc["plugins"] = plugins
    path = tmp_path / f"plugin-{model}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_experiment(path)


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))  # what a job's interpreter finds
    yield root
    MODELS._entries.pop("cosine-ep", None)
    MODELS.discover(again=True)


def _complete(uri, config):
    run = Tracker(uri).find_run(config)
    return run is not None and Tracker(uri).is_complete(run)


def test_an_entry_point_model_is_found_and_trains(tmp_path, site):
    with pytest.raises(ConfigError, match="unknown model 'cosine-ep'"):
        _experiment(tmp_path, "cosine-ep").resolve("cpu")
    _write_package(site, "cosineplug", entry_point="cosine-ep")
    MODELS.discover(again=True)
    (config,) = _experiment(tmp_path, "cosine-ep").resolve("cpu")
    assert config.model.params.backbone.hidden == TINY_TOY["model"]["backbone"]["hidden"]
    uri = f"sqlite:///{tmp_path / 'in-process.db'}"
    assert execute(config, uri, tmp_path / "runs")["metrics"]["nll_valid_bound"] > 0


def test_a_plugin_module_travels_with_the_config_but_not_into_the_run_id(tmp_path, site):
    _write_package(site, "cosine_mod")
    (config,) = _experiment(tmp_path, "cosine_mod", plugins=["cosine_mod"]).resolve("cpu")
    assert config.plugins == ("cosine_mod",) and config.to_dict()["plugins"] == ["cosine_mod"]
    assert RunConfig.from_dict({**config.to_dict(), "plugins": []}).run_id == config.run_id


@pytest.mark.slow
def test_plugin_models_train_in_a_job_process(tmp_path, site):
    """A job is a fresh interpreter: it finds the entry point in the installed metadata,
    and imports the experiment's plugin modules before it validates the config."""
    _write_package(site, "cosineplug", entry_point="cosine-ep")
    _write_package(site, "cosine_mod")
    MODELS.discover(again=True)
    configs = [
        *_experiment(tmp_path, "cosine-ep").resolve("cpu"),
        *_experiment(tmp_path, "cosine_mod", plugins=["cosine_mod"]).resolve("cpu"),
    ]
    uri = f"sqlite:///{tmp_path / 'job.db'}"
    results = launch(configs, "local", tracking_uri=uri, runs_dir=tmp_path / "runs")
    for config, result in zip(configs, results, strict=True):
        assert result["metrics"]["nll_valid_bound"] > 0 and _complete(uri, config)


def test_a_plugin_that_cannot_be_imported_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"plugins\[0\]: cannot import module 'no_such_pkg'"):
        _experiment(tmp_path, "mdm", plugins=["no_such_pkg"]).resolve("cpu")
