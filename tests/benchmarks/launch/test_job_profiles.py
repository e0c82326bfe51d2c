"""Allocations sized to the work: the kind of every job, the profile each kind gets, Slurm
arrays per profile with their dependencies, and evaluation estimates from throughput."""

from __future__ import annotations

import pytest

import benchmarks.launch.plan
from benchmarks.cli.main import _scale_experiments, main
from benchmarks.core import ConfigError, Metric
from benchmarks.launch.dryrun import dry_run, layout_of
from benchmarks.launch.estimate import estimate, measured_eval_time
from benchmarks.launch.eval_scaling import sample_count
from benchmarks.launch.job_kinds import job_kind
from benchmarks.launch.job_profiles import choose_profiles
from benchmarks.launch.plan import PlannedExperiment, plan_experiments, submit_plan
from benchmarks.launch.profiles import list_profiles, load_profile
from benchmarks.tracking.store_reader import StoreReader
from benchmarks.tracking.tracker import EVAL_TIME_METRIC, SAMPLES_METRIC, Tracker
from tests.benchmarks.launch.test_submission import _fake_slurm
from tests.helpers import sqlite, tiny_toy

TRAINING = {"ell-sweep", "table1", "table1-hybrid", "table3"}
EVALUATION = {"table2", "nfe-sweep", "fid-curve"}  # they read an upstream run's checkpoints


@pytest.fixture(scope="module")
def paper_plan():
    return plan_experiments(_scale_experiments("paper"), "paper", reproduction=True)


@pytest.fixture
def no_sbatch(tmp_path_factory, monkeypatch):
    """A PATH without sbatch or sinfo (the machine may have them)."""
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-bin")))


def _kinds(plan) -> dict[str, set[str]]:
    return {item.name: {job_kind(c).name for c in item.configs} for item in plan if item.configs}


# ------------------------------------------------------------------ kinds


@pytest.mark.slow  # resolves every paper experiment
def test_every_job_of_the_paper_plan_is_of_its_kind(paper_plan):
    kinds = _kinds(paper_plan)
    assert set(kinds) == TRAINING | EVALUATION | {"idle-steps"}
    assert kinds["idle-steps"] == {"cpu"}
    assert all(kinds[name] == {"evaluation"} for name in EVALUATION)
    assert all(kinds[name] == {"training"} for name in TRAINING)
    gpu8 = layout_of("slurm", load_profile("gpu-8x"))
    for config in (c for item in paper_plan for c in item.configs):
        kind = job_kind(config)
        # A training job trains its model's steps; the others spend none.
        trains = config.model is not None and config.train.steps > 0 and config.upstream is None
        assert (kind.name == "training") == trains, config.variant
        assert estimate(config, None, gpu8).steps == (config.train.steps if trains else 0)
        if kind.name == "evaluation":
            assert kind.why == f"reads {config.upstream.experiment}"


@pytest.mark.slow  # resolves every paper experiment's released weights
def test_every_job_of_the_released_plan_evaluates_or_simulates():
    names = _scale_experiments("paper")
    plan = plan_experiments(names, "paper", reproduction=True, weights="released")
    configs = [c for item in plan for c in item.configs]
    assert configs
    for config in configs:
        expected = "cpu" if config.experiment == "idle-steps" else "evaluation"
        assert job_kind(config).name == expected, config.variant
        assert (config.weights is not None) == (expected == "evaluation")
    assert {c.experiment for c in configs if job_kind(c).name == "cpu"} == {"idle-steps"}


# ------------------------------------------------------------------ choosing profiles


def test_defaults_follow_the_training_profile():
    gpu = choose_profiles("slurm", "gpu-8x")
    assert (gpu.training.name, gpu.evaluation.name, gpu.cpu.name) == ("gpu-8x", "gpu-1x", "cpu")
    assert gpu.defaulted == ("evaluation", "cpu")
    assert gpu.evaluation.profile.gpus_per_node == 1 and gpu.cpu.profile.gpus_per_node == 0
    assert gpu.label("cpu") == "cpu (default)" and gpu.label("training") == "gpu-8x"
    # Without GPUs every kind keeps the --profile (the one-node test cluster's partition).
    cpu_ranks = choose_profiles("slurm", "local-test")
    assert cpu_ranks.evaluation is cpu_ranks.training is cpu_ranks.cpu
    given = choose_profiles("slurm", "gpu-8x", "gpu-node", "cpu-ddp")
    assert (given.evaluation.name, given.cpu.name, given.defaulted) == ("gpu-node", "cpu-ddp", ())
    assert choose_profiles("local", "cpu-ddp").cpu.name == "cpu-ddp"


def test_no_cpu_job_holds_a_gpu_with_any_profile(tmp_path):
    assert load_profile("cpu").gpus_per_node == 0
    for training in list_profiles():
        for given in (None, *list_profiles()):
            try:
                chosen = choose_profiles("slurm", training, cpu_profile=given)
            except ConfigError as err:
                assert load_profile(given).gpus_per_node > 0 and "--cpu-profile" in str(err)
                continue
            assert chosen.cpu.gpus == 0, (training, given)
    two = tmp_path / "two-gpus.yaml"
    two.write_text("gpus_per_node: 2\n")
    with pytest.raises(ConfigError, match=r"--cpu-profile: profile .* holds 2 GPU\(s\)"):
        choose_profiles("slurm", "gpu-8x", cpu_profile=str(two))


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("primebench: error: "), lines
    return lines[0]


def test_a_bad_profile_is_an_error_naming_its_flag(capsys, no_sbatch):
    sweep = ["sweep", "idle-steps", "--cluster", "slurm", "--dry-run"]
    line = _error(capsys, [*sweep, "--profile", "gpu-8x", "--eval-profile", "gpu-2x"])
    assert "--eval-profile: unknown cluster profile 'gpu-2x'; valid: cpu," in line
    line = _error(capsys, [*sweep, "--profile", "gpu-9x"])
    assert "--profile: unknown cluster profile 'gpu-9x'" in line
    line = _error(capsys, [*sweep, "--profile", "gpu-8x", "--cpu-profile", "gpu-1x"])
    assert "--cpu-profile: profile gpu-1x holds 1 GPU(s) per node" in line
    assert "gpus_per_node: 0" in line
    local = ["sweep", "idle-steps", "--cluster", "local", "--cpu-profile", "cpu", "--dry-run"]
    assert "--cpu-profile: only with --cluster slurm" in _error(capsys, local)


# ------------------------------------------------------------------ arrays per profile


@pytest.fixture(scope="module")
def mixed_plan():
    """table3 alone keeps two nfe-sweep evaluations of ell-sweep's models beside its own
    training runs: an experiment with two kinds, waiting for ell-sweep."""
    plan = plan_experiments(["table3", "ell-sweep", "idle-steps"], "paper")
    assert _kinds(plan)["table3"] == {"training", "evaluation"}
    return plan


def _recording_slurm(monkeypatch) -> tuple[list, list]:
    """tests.benchmarks.launch.test_submission's fake Slurm: (experiment, afterok ids) of
    each array, and (the kinds of its jobs, the other arguments of ``submit``)."""
    calls: list = []
    _fake_slurm(monkeypatch, calls)
    fake, arrays = benchmarks.launch.plan.submit, []

    def recording(configs, cluster, **kwargs):
        arrays.append(({job_kind(c).name for c in configs}, kwargs))
        return fake(configs, cluster, **kwargs)

    monkeypatch.setattr("benchmarks.launch.plan.submit", recording)
    return calls, arrays


def test_a_plan_of_mixed_kinds_submits_an_array_per_profile(
    mixed_plan, monkeypatch, tmp_path, capsys
):
    calls, arrays = _recording_slurm(monkeypatch)
    chosen = choose_profiles("slurm", "gpu-8x")
    subs = submit_plan(mixed_plan, "slurm", profiles=chosen, tracking_uri=sqlite(tmp_path / "m.db"))
    out = capsys.readouterr().out
    by_kind = {"training": "gpu-8x", "evaluation": "gpu-1x", "cpu": "cpu"}
    assert len(calls) == 4  # ell-sweep, table3's training and evaluation, idle-steps
    for kinds, kwargs in arrays:
        (kind,) = kinds
        assert kwargs["profile"] == load_profile(by_kind[kind])
    ell = subs["ell-sweep"].job_ids
    assert [after for _, after in calls] == [None, ell, ell, None]  # both table3 arrays wait
    table3 = mixed_plan[[p.name for p in mixed_plan].index("table3")]
    assert [c.run_id for c in subs["table3"].configs] == [
        c.run_id for c in sorted(table3.configs, key=lambda c: job_kind(c).name != "training")
    ]
    trained = sum(job_kind(c).name == "training" for c in table3.configs)
    last = len(table3.configs) - trained - 1
    assert f"job array 101 (101_0 .. 101_{trained - 1}) with profile gpu-8x" in out
    assert f"job array 102 (102_0 .. 102_{last}) with profile gpu-1x" in out
    assert "after ell-sweep [100] succeed" in out


def test_a_sweep_on_slurm_submits_each_kind_with_its_profile(monkeypatch, capsys, tmp_path):
    calls, arrays = _recording_slurm(monkeypatch)
    waited = []
    monkeypatch.setattr("benchmarks.cli.main.wait_jobs", lambda sub, **k: waited.append(sub) or [])
    argv = ["sweep", "table3", "--scale", "paper", "--cluster", "slurm", "--profile", "gpu-8x"]
    assert main([*argv, "--if-busy", "exit", "--tracking-uri", sqlite(tmp_path / "m.db")]) == 0
    out = capsys.readouterr().out
    # its training runs, and its evaluations of ell-sweep's models
    assert [kinds for kinds, _ in arrays] == [{"training"}, {"evaluation"}]
    assert all(kwargs["if_busy"] == "exit" for _, kwargs in arrays)
    assert "with profile gpu-8x" in out and "with profile gpu-1x" in out
    (item,) = plan_experiments(["table3"], "paper")
    (sub,) = waited  # one wait over both arrays of the experiment
    assert sorted(c.run_id for c in sub.configs) == sorted(c.run_id for c in item.configs)


def test_the_dry_run_shows_each_jobs_profile_and_why(mixed_plan, capsys, no_sbatch, tmp_path):
    profiles = choose_profiles("slurm", "gpu-8x")
    uri = sqlite(tmp_path / "none.db")
    estimates = dry_run(mixed_plan, "slurm", profiles=profiles, tracking_uri=uri)
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if "  " in line}
    idle = rows["idle-steps", "prime-l8"]
    assert "1x1 CPU rank" in idle and "cpu: needs no device" in idle and "cpu (default)" in idle
    nfe = rows["nfe-sweep", "imagenet32-l2-nfe1024"]
    assert "1x1 GPU" in nfe and "evaluation: reads ell-sweep" in nfe and "gpu-1x (default)" in nfe
    assert "1x8 GPU" in rows["table3", "cifar10-mdm-mixture"]
    assert "training (" in out and "--profile gpu-8x" in out
    assert "gpu-1x, the default of --eval-profile: one GPU per evaluation-only job" in out
    assert "cpu, the default of --cpu-profile" in out
    assert len(estimates) == sum(len(item.configs) for item in mixed_plan)
    assert not (tmp_path / "none.db").exists()


# ------------------------------------------------------------------ estimates


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A store with one evaluation-only toy2d run (mdm, 100 samples) that logged 10 s of
    evaluation and 50 samples/s."""
    uri = sqlite(tmp_path_factory.mktemp("store") / "mlflow.db")
    (run,) = tiny_toy(["mdm"], {"train": {"steps": 0}})
    tracker = Tracker(uri)
    mlflow_id = tracker.start(run)
    device = {"device": "cuda:0 (test GPU)"}
    tracker.log_metrics(
        mlflow_id, [Metric(EVAL_TIME_METRIC, 10.0, device), Metric(SAMPLES_METRIC, 50.0, device)]
    )
    tracker.finish(mlflow_id)
    return uri, run


def test_evaluation_estimates_from_time_then_throughput(measured):
    uri, run = measured
    store = StoreReader(uri)
    evaluating = {"train": {"steps": 0}}
    assert measured_eval_time(store, run).source == "measured, this run"
    # Same variant, same sample count, another setting: its time stands.
    (other,) = tiny_toy(["mdm"], {**evaluating, "task": {"sample_steps": 8}})
    assert other.run_id != run.run_id
    same = measured_eval_time(store, other)
    assert (same.seconds, same.source) == (10.0, "measured, same variant")
    # Ten times the samples: the variant's throughput, 1000 / 50 = 20 s.
    (more,) = tiny_toy(["mdm"], {**evaluating, "task": {"sample_count": 1000}})
    assert sample_count(more) == 1000
    scaled = measured_eval_time(store, more)
    assert scaled.seconds == pytest.approx(20.0)
    assert scaled.source == "1,000 samples at 50/s per device on cuda:0 (test GPU), same variant"
    est = estimate(more, None, layout_of("slurm", load_profile("gpu-1x")), scaled)
    assert est.device_hours == pytest.approx(20.0 / 3600) and est.allocations == 1
    # Another variant: the experiment's median at the same count, else nothing.
    (joint,) = tiny_toy(["prime-l2-joint"], evaluating)
    assert measured_eval_time(store, joint).source == "measured, median of 1 run(s)"
    (joint_more,) = tiny_toy(["prime-l2-joint"], {**evaluating, "task": {"sample_count": 1000}})
    assert measured_eval_time(store, joint_more) is None


def test_the_dry_run_names_the_throughput_it_used(measured, capsys):
    uri, _ = measured
    thousand = {"train": {"steps": 0}, "task": {"sample_count": 1000}}
    (more,) = tiny_toy(["mdm"], thousand)
    (joint,) = tiny_toy(["prime-l2-joint"], thousand)
    plan = [PlannedExperiment("toy2d", [more, joint])]
    scaled, unknown = dry_run(plan, "local", tracking_uri=uri)
    out = capsys.readouterr().out
    assert scaled.eval_time.seconds == pytest.approx(20.0) and unknown.device_hours is None
    row = next(line for line in out.splitlines() if more.run_id in line)
    assert "evaluation: train.steps = 0" in row and "1,000 samples at 50/s" in row
    assert "measure first: run one of an experiment" in out and "perf/samples_per_s" in out
