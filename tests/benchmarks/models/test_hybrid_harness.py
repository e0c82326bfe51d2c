"""The hybrid (block diffusion) in the harness: runs, window search, fine-tuning, ranks."""

from __future__ import annotations

import pytest
import torch

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import deep_merge
from benchmarks.core import ConfigError
from benchmarks.launch.launcher import launch
from benchmarks.launch.plan import plan_experiments
from benchmarks.launch.profiles import load_profile
from benchmarks.registry import MODELS, TASKS
from benchmarks.reports.render import render_report
from benchmarks.tracking.tracker import Tracker
from benchmarks.training.checkpoints import initialise_from, load_trained_model
from benchmarks.training.runner import execute
from tests.benchmarks.runtime.test_distributed import assert_same_training
from tests.helpers import as_overrides

TINY = {
    "train": {
        "steps": 8,
        "global_batch_size": 8,
        "checkpoint_every": 4,
        "log_every": 2,
        "warmup_steps": 2,
        "loader_workers": 0,
    },
    "task": {
        "block_size": 32,
        "eval_blocks": 8,
        "eval_passes": 1,
        "eval_batch": 8,
        "sample_count": 2,
        "sample_steps": 8,
        "judge": None,  # no sample quality: no judge run to train first
    },
}


def _config(variant: str, overrides: dict | None = None):
    (config,) = load_experiment("table1-cpu").resolve("cpu", deep_merge(TINY, overrides), [variant])
    return config


def test_hybrid_runs_report_their_bound_idle_steps_and_window(tmp_path):
    uri, runs = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "runs"
    search = {"model": {"window_search_every": 4, "window_search_rows": 8}}
    config = _config("block-prime-l4-l2", search)
    metrics = execute(config, uri, runs)["metrics"]
    for name in ("val_nll_valid_bound", "val_nll_published", "sample_idle_ratio", "sample_nfe"):
        assert metrics[name] == metrics[name]  # present and not nan
    # The closed form of the per-block idle ratio, L' = 4 tokens of 2 sub-tokens, T = 8.
    assert metrics["sample_idle_ratio_closed_form"] == pytest.approx((1 - 1 / 8) ** 8, rel=1e-3)
    beta, omega = metrics["training_window_beta"], metrics["training_window_omega"]
    assert 0.0 <= beta < omega <= 1.0
    state = torch.load(runs / config.run_id / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["state_dict"]["model.window"].tolist() == pytest.approx([beta, omega])
    tracker = Tracker(uri)
    (run,) = tracker.client.search_runs([tracker.experiment_id(config.experiment)])
    assert tracker.client.get_metric_history(run.info.run_id, "train/window_beta")
    render_report(uri, "cpu", results_dir=tmp_path / "results")
    table = (tmp_path / "results" / "cpu" / "table1_text_ppl.md").read_text()
    assert "| Block-Prime L'=4 l=2 | yes |" in table and "from scratch, 8 steps" in table


def test_fine_tuning_starts_from_the_upstream_network(tmp_path):
    uri, runs = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "runs"
    mdlm = _config("mdlm")
    execute(mdlm, uri, runs)
    upstream, _ = load_trained_model(mdlm, runs, torch.device("cpu"))
    fine_tune = {"train": {"init_from": "table1-cpu/mdlm", "init_overrides": as_overrides(TINY)}}
    tuned = _config("bd3lm-l4", fine_tune)
    model = MODELS.get("bd3lm").build(tuned.model.params, _spec(tuned))
    tracker = Tracker(uri)
    initialise_from(model, tuned, runs, tracker, None)
    for name, value in upstream.network.state_dict().items():
        assert torch.equal(model.network.state_dict()[name], value), name
    wrong = _config("block-prime-l4-l2", fine_tune)
    other = MODELS.get("bd3lm").build(wrong.model.params, _spec(wrong))
    with pytest.raises(ConfigError, match="does not fit this model"):
        initialise_from(other, wrong, runs, tracker, None)


def _spec(config):
    return TASKS.get(config.task.name)(config.task.params, config).data_spec()


def test_fine_tuned_experiments_wait_for_their_upstream():
    plan = {p.name: p for p in plan_experiments(["table2", "table1-hybrid", "table1"], "paper")}
    order = list(plan)
    assert order.index("table1") < order.index("table1-hybrid") < order.index("table2")
    assert plan["table1-hybrid"].upstream == ("table1",)
    assert plan["table2"].upstream == ("table1", "table1-hybrid")
    with pytest.raises(ConfigError, match="train.init_from: expected 'experiment/variant'"):
        _config("bd3lm-l4", {"train": {"init_from": "mdlm"}})


def test_block_size_longer_than_the_sequence_is_an_error():
    # At validation: the task's settings fix the sequence length before any data is read.
    with pytest.raises(ConfigError, match="model.block_size: 64 exceeds the sequence length 32"):
        _config("bd3lm-l4", {"model": {"block_size": 64}})


@pytest.mark.slow
def test_hybrid_takes_the_same_steps_on_one_process_and_two_gloo_ranks(tmp_path):
    # With BD3-LM's search (each rank scores its rows of every batch) and resampling.
    search = {"window_search_every": 2, "window_search_rows": 6, "window_search_batch": 3}
    overrides = {
        "train": {"loader_workers": 1, "log_every": 1},
        "model": {**search, "resample": True},
    }
    config = _config("block-prime-l4-l2", overrides)
    one = (f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "one")
    two = (f"sqlite:///{tmp_path / 'two.db'}", tmp_path / "two")
    launch([config], "local", tracking_uri=one[0], runs_dir=one[1])
    launch([config], "local", profile=load_profile("cpu-ddp"), tracking_uri=two[0], runs_dir=two[1])
    assert_same_training(one, two, config)
