"""Fine-tuning from a kept checkpoint of an upstream run: ``init_from: experiment/variant@n``."""

from __future__ import annotations

import pytest
import torch

from benchmarks.core import ConfigError
from benchmarks.registry import MODELS
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.checkpoints import initialise_from, kept_checkpoint, load_trained_model
from benchmarks.training.runner import execute
from tests.benchmarks.models.test_hybrid_harness import TINY, _config, _spec
from tests.helpers import as_overrides


def _fine_tune(init_from: str, ema_init: str = "weights"):
    train = {"init_from": init_from, "init_overrides": as_overrides(TINY), "ema_init": ema_init}
    config = _config("bd3lm-l4", {"train": train})
    return config, MODELS.get("bd3lm").build(config.model.params, _spec(config))


@pytest.mark.slow
def test_init_from_a_step_loads_that_kept_checkpoint_and_names_a_missing_one(tmp_path):
    uri, runs = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "runs"
    # Steps 8, a periodic checkpoint every 4 (the cpu scale keeps the newest only): step 3
    # is off the grid, step 4 on it and superseded by step 8; both are kept.
    mdlm = _config("mdlm", {"train": {"keep_checkpoint_steps": [3, 4]}})
    assert mdlm.run_id == _config("mdlm").run_id  # storage only
    execute(mdlm, uri, runs)
    names = sorted(p.name for p in (runs / mdlm.run_id / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step00000003.ckpt", "step00000004.ckpt", "step00000008.ckpt"]
    state = torch.load(kept_checkpoint(runs, mdlm.run_id, 3), weights_only=False)
    assert state["global_step"] == 3

    tracker = Tracker(uri)
    at3, _ = load_trained_model(
        mdlm, runs, torch.device("cpu"), kept_checkpoint(runs, mdlm.run_id, 3)
    )
    last, _ = load_trained_model(mdlm, runs, torch.device("cpu"))
    config, model = _fine_tune("table1-cpu/mdlm@3")
    assert config.train.init_source == ("table1-cpu", "mdlm") and config.train.init_step == 3
    assert initialise_from(model, config, runs, tracker, None) is None  # EMA: these weights
    tuned = model.network.state_dict()
    assert all(torch.equal(tuned[k], v) for k, v in at3.network.state_dict().items())
    assert not all(torch.equal(tuned[k], v) for k, v in last.network.state_dict().items())
    # ema_init: random hands back the random weights the network had before the load.
    config, model = _fine_tune("table1-cpu/mdlm@3", ema_init="random")
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    start = initialise_from(model, config, runs, tracker, None)
    assert start.keys() == before.keys() and all(torch.equal(start[k], before[k]) for k in start)
    assert not torch.equal(model.network.head.weight, start["network.head.weight"])

    config, model = _fine_tune("table1-cpu/mdlm@5")
    with pytest.raises(
        ConfigError,
        match=r"kept no checkpoint at step 5 .*keep_checkpoint_steps of table1-cpu/mdlm",
    ):
        initialise_from(model, config, runs, tracker, None)
    config, model = _fine_tune("table1-cpu/mdlm@9")
    with pytest.raises(ConfigError, match="trains 8 steps"):
        initialise_from(model, config, runs, tracker, None)


@pytest.mark.parametrize(
    "bad", ["table1-cpu/mdlm@", "table1-cpu/mdlm@0", "table1-cpu/mdlm@x", "mdlm@3"]
)
def test_a_malformed_init_from_is_an_error(bad):
    with pytest.raises(ConfigError, match="'experiment/variant@step' \\(step > 0\\)"):
        _config("bd3lm-l4", {"train": {"init_from": bad}})


def test_kept_steps_must_be_positive():
    with pytest.raises(ConfigError, match="train.keep_checkpoint_steps: steps must be >= 1"):
        _config("mdlm", {"train": {"keep_checkpoint_steps": [0]}})
