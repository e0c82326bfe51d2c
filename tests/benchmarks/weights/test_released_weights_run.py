"""Released weights through the harness: which runs a released reproduction has, what it
needs and costs, and one run end to end (fetch, load, evaluate, record, report)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from benchmarks.cli.main import main
from benchmarks.config.experiments import load_experiment, resolve_variant
from benchmarks.config.overrides import parse_overrides
from benchmarks.config.run_config import RunConfig
from benchmarks.config.weights_section import NoReleasedWeights
from benchmarks.core import ConfigError
from benchmarks.launch.dryrun import dry_run, layout_of
from benchmarks.launch.estimate import StepTime, estimate
from benchmarks.launch.plan import PlannedExperiment, plan_experiments, upstream_of
from benchmarks.launch.profiles import load_profile
from benchmarks.registry import MODELS, TASKS
from benchmarks.reports.render import render_report
from benchmarks.training.runner import execute
from benchmarks.weights import released
from benchmarks.weights.mapping import load_network
from tests.helpers import mlflow_runs, sqlite, tiny_toy

PAPER_RELEASED = ["table1", "table1-hybrid", "table2", "table3", "ell-sweep", "nfe-sweep"]


def test_released_mode_keeps_the_variants_weights_and_gives_a_new_run_id():
    trained = resolve_variant("table1", "paper", {}, "prime-l2", 1)
    released_run = resolve_variant("table1", "paper", {}, "prime-l2", 1, weights="released")
    assert trained.weights is None and "weights" not in trained.to_dict()
    assert released_run.weights.origin == (
        "chen-hao-chao/mdm-prime/text/owt/results_prime_l2_owt/checkpoint.ckpt@main"
    )
    assert released_run.weights.format == "mdm-prime-text"
    assert released_run.run_id != trained.run_id
    # The stored form validates back to the same run.
    assert RunConfig.from_dict(released_run.to_dict()).run_id == released_run.run_id


def test_an_evaluation_of_an_upstream_run_takes_the_upstream_variants_weights():
    run = resolve_variant("nfe-sweep", "paper", {}, "cifar10-l2-nfe128", 0, weights="released")
    upstream = resolve_variant("ell-sweep", "paper", {}, "cifar10-l2", 0, weights="released")
    assert run.weights == upstream.weights
    assert run.task.params.sample_steps == 128  # its own sampler settings
    assert upstream_of([run]) == []  # it reads no trained run: nothing to wait for


def test_released_weights_need_the_paper_scale():
    with pytest.raises(ConfigError, match="--scale paper"):
        load_experiment("table1").resolve("cpu", None, ["prime-l2"], "released")


@pytest.mark.slow  # resolves every paper experiment
def test_a_released_reproduction_names_every_variant_without_weights():
    plan = plan_experiments(PAPER_RELEASED, "paper", reproduction=True, weights="released")
    missing = [line for item in plan for line in item.unavailable]
    assert any("table3.yaml [cifar10-mdm-mixture, paper]" in line for line in missing)
    assert any("table1-hybrid.yaml [block-prime-l4-l4, paper]" in line for line in missing)
    configs = [c for item in plan for c in item.configs]
    assert configs and all(c.weights is not None for c in configs)
    assert all(not item.upstream for item in plan)  # no run waits for a training
    with pytest.raises(NoReleasedWeights, match="authors published none"):
        load_experiment("table3").resolve("paper", None, ["cifar10-mdm-mixture"], "released")


def test_the_fid_curve_has_no_released_weights():
    with pytest.raises(NoReleasedWeights, match="checkpoints kept along a training"):
        load_experiment("fid-curve").resolve("paper", None, ["cifar10-l2"], "released")


def test_dry_run_of_released_weights_says_measure_first_and_sizes_the_job(capsys):
    four_calls = {"task": {"sample_count": 100}}  # 4 sampler calls of 25 (table1: 5,000)
    plan = plan_experiments(["table1"], "paper", four_calls, ["prime-l2"], weights="released")
    estimates = dry_run(plan, "local", load_profile("gpu-8x"))  # no sinfo: local
    out = capsys.readouterr().out
    assert estimates[0].eval_only and estimates[0].device_hours is None
    assert "measure first" in out
    assert "--profile gpu-1x" in out  # 7 of 8 GPUs would idle
    one_gpu = layout_of("slurm", load_profile("gpu-1x"))
    assert one_gpu.devices == 1


def test_a_measured_evaluation_time_estimates_released_runs():
    (config,) = load_experiment("table1").resolve("paper", None, ["prime-l2"], "released")
    layout = layout_of("slurm", load_profile("gpu-8x"))
    est = estimate(config, StepTime(0.5, 8, "measured"), layout, StepTime(7200.0, None, "m"))
    assert est.steps == 0  # the paper's training steps are not spent
    assert est.wall_hours == pytest.approx(2.0)
    assert est.device_hours == pytest.approx(16.0)  # the allocation's 8 GPUs, billed
    assert est.allocations == 1


def _suite_format_loader(model: torch.nn.Module, path) -> dict[str, str]:
    load_network(model.network, load_file(str(path)), str(path))
    return {"weights.format": "the suite's own parameter names (test)"}


@pytest.mark.slow
def test_released_weights_run_evaluates_them_without_training(tmp_path, monkeypatch):
    """A file holding a model's initial weights, evaluated as released weights, gives the
    metrics of that model evaluated untrained: the same evaluation, only the weights
    loaded; the run records the file, its checksum, and says so on every metric card."""
    (untrained,) = tiny_toy(["prime-l2-joint"], {"train": {"steps": 0}})
    task = TASKS.get(untrained.task.name)(untrained.task.params, untrained)
    torch.manual_seed(untrained.seed)  # as the runner builds its model
    model = MODELS.get(untrained.model.name).build(untrained.model.params, task.data_spec())
    weights = tmp_path / "released.safetensors"
    save_file({k: v.contiguous() for k, v in model.network.state_dict().items()}, weights)
    monkeypatch.setitem(released.LOADERS, "hub-mdlm", _suite_format_loader)
    (trained,) = tiny_toy(["prime-l2-joint"])
    section = {"format": "hub-mdlm", "file": str(weights), "repo": None}
    run = RunConfig.from_dict({**trained.to_dict(), "weights": section})
    uri, runs = sqlite(tmp_path / "mlflow.db"), tmp_path / "runs"

    got = execute(run, uri, runs)
    expected = execute(untrained, uri, runs)

    assert got["metrics"] == expected["metrics"]
    assert not list((runs / run.run_id / "checkpoints").glob("*.ckpt"))  # nothing trained
    (stored,) = mlflow_runs(uri, run)
    tags = stored.data.tags
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert tags["primebench.weights"] == f"file:{weights}"
    assert tags["weights.sha256"] == sha
    cards = [json.loads(v) for k, v in tags.items() if k.startswith("card.")]
    assert cards
    for card in cards:
        assert card["weights"].startswith(f"released weights: file:{weights}")
        assert sha in card["weights"]

    # The dry run of the same run now estimates it from the evaluation time it logged.
    (est,) = dry_run([PlannedExperiment("toy2d", [run])], "local", tracking_uri=uri)
    assert est.eval_time.source == "measured, this run"
    assert est.eval_time.seconds == stored.data.metrics["perf/eval_time_s"] > 0

    out = tmp_path / "results"
    render_report(uri, "cpu", results_dir=out, weights="released")
    index = (out / "cpu-released" / "index.md").read_text()
    assert "the released weights" in index.splitlines()[0]
    assert f"toy2d/prime-l2-joint: file:{weights}" in index
    render_report(uri, "cpu", results_dir=out)  # the trained report leaves it out
    assert "Released weights" not in (out / "cpu" / "index.md").read_text()


def test_cli_dry_run_of_released_weights_names_what_it_leaves_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "table3", "--scale", "paper", "--weights", "released", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "left out: table3.yaml [cifar10-mdm-mixture, paper]: no released weights" in out
    assert "measure first" in out and "--weights released" in out
    table = out.split("== estimate")[0]  # the jobs, before the summary
    assert "cifar10-l1" in table and "cifar10-mdm-mixture" not in table
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_a_local_file_replaces_the_hub_file_of_a_variant_and_of_its_evaluations():
    local = parse_overrides(["weights.repo=null", "weights.file=ckpt/prime_l2.pth"])
    exp = load_experiment("nfe-sweep")
    (run,) = exp.resolve("paper", local, ["cifar10-l2-nfe128"], "released")
    assert run.weights.origin == "file:ckpt/prime_l2.pth"
    assert (run.weights.format, run.weights.epoch) == ("mdm-prime-image", 4250)  # inherited
    with pytest.raises(ConfigError, match="only with --weights released"):
        exp.resolve("paper", local, ["cifar10-l2-nfe128"])
