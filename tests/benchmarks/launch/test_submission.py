"""Submit-and-return: dependency order, the ledger, status, dry runs, bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from benchmarks.cli.main import main
from benchmarks.core import ConfigError
from benchmarks.launch.dryrun_summary import UNKNOWN_STEP_TIME
from benchmarks.launch.launcher import launch
from benchmarks.launch.ledger import latest_by_run_id, ledger_path, read_ledger, record
from benchmarks.launch.plan import _order, plan_experiments, stages, submit_plan
from benchmarks.launch.slurm_query import SlurmJob, expand_job_ids, parse_sacct, parse_squeue
from benchmarks.launch.status import collect_status, format_status
from benchmarks.launch.submission import Submission
from benchmarks.tracking.tracker import Tracker
from tests.helpers import TINY_TOY, as_overrides, tiny_toy

PAPER = ["reproduce", "--scale", "paper", "--cluster", "slurm", "--profile", "gpu-8x"]
TINY_SETS = [arg for item in as_overrides(TINY_TOY) for arg in ("--set", item)]


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def no_sbatch(tmp_path_factory, monkeypatch):
    """A PATH without sbatch, squeue, sacct or sinfo (the machine may have them)."""
    empty = tmp_path_factory.mktemp("empty-bin")
    monkeypatch.setenv("PATH", str(empty))


# ------------------------------------------------------------------ dependency order


def test_plan_puts_upstream_experiments_first_and_marks_outside_ones():
    names = ["table2", "nfe-sweep", "table1", "ell-sweep", "idle-steps"]
    plan = plan_experiments(names, "paper")
    order = [p.name for p in plan]
    assert order.index("table1") < order.index("table2")
    assert order.index("ell-sweep") < order.index("nfe-sweep")
    by_name = {p.name: p for p in plan}
    assert by_name["table2"].upstream == ("table1",) and by_name["table1"].upstream == ()
    (alone,) = plan_experiments(["table2"], "paper")
    assert alone.upstream == () and alone.external == ("table1", "table1-hybrid")


def test_stages_put_each_experiment_one_after_its_latest_upstream():
    names = ["table2", "nfe-sweep", "table1", "table1-hybrid", "ell-sweep", "idle-steps"]
    grouped = [[p.name for p in stage] for stage in stages(plan_experiments(names, "paper"))]
    depth = {name: i for i, stage in enumerate(grouped) for name in stage}
    assert depth["table1"] == depth["ell-sweep"] == depth["idle-steps"] == 0
    assert depth["table1-hybrid"] == depth["nfe-sweep"] == 1
    assert depth["table2"] == 2  # after table1 and after table1-hybrid
    assert sorted(n for stage in grouped for n in stage) == sorted(names)
    # The cpu scale has no upstream experiments: one stage, so one pool of runs.
    cpu = ["idle-steps", "image-cpu", "table1-cpu", "toy2d"]
    assert len(stages(plan_experiments(cpu, "cpu"))) == 1


def test_cycles_and_unknown_upstream_experiments_are_errors():
    with pytest.raises(ConfigError, match=r"cycle: a -> b -> a"):
        _order(["a", "b"], {"a": ["b"], "b": ["a"]})
    overrides = {"upstream": {"experiment": "no-such-thing"}}
    with pytest.raises(ConfigError, match=r"upstream.experiment: expected one of .*no-such"):
        plan_experiments(["table2"], "paper", overrides)


class FakeJob:
    def __init__(self, job_id: str):
        self.job_id = job_id


def _fake_slurm(monkeypatch, calls: list):
    arrays = iter(range(100, 200))

    def fake_submit(configs, cluster, *, after=None, **kwargs):
        array = next(arrays)
        calls.append((configs[0].experiment, after))
        jobs = [FakeJob(f"{array}_{i}") for i in range(len(configs))]
        return Submission(list(configs), jobs, cluster, Path("runs"))

    monkeypatch.setattr("benchmarks.launch.plan.submit", fake_submit)
    monkeypatch.setattr("benchmarks.launch.plan.validate", lambda *a, **k: None)


def test_reproduce_on_slurm_submits_everything_with_dependencies_and_exits(monkeypatch, capsys):
    calls: list = []
    _fake_slurm(monkeypatch, calls)
    assert main(PAPER) == 0
    out = capsys.readouterr().out
    submitted = {name: after for name, after in calls}
    arrays = {name: 100 + i for i, (name, _) in enumerate(calls)}
    table1 = [f"{arrays['table1']}_{i}" for i in range(12)]
    hybrid = [f"{arrays['table1-hybrid']}_{i}" for i in range(4)]
    assert submitted["table1-hybrid"] == table1  # fine-tuned from table1's MDLM
    assert submitted["table2"] == table1 + hybrid
    assert submitted["nfe-sweep"] == [f"{arrays['ell-sweep']}_{i}" for i in range(10)]
    assert submitted["table1"] is None and submitted["ell-sweep"] is None
    assert f"table2: 16 job(s) on slurm, job array {arrays['table2']}" in out
    assert f"after table1 [{arrays['table1']}] succeed" in out
    assert "primebench status --scale paper" in out and "== report" not in out


def test_nothing_is_submitted_when_a_later_experiment_fails_validation(monkeypatch):
    calls: list = []
    _fake_slurm(monkeypatch, calls)

    def validate(configs, cluster, profile=None, **kwargs):
        if configs[0].experiment == "table2":
            raise ConfigError("bad table2")

    monkeypatch.setattr("benchmarks.launch.plan.validate", validate)
    with pytest.raises(ConfigError, match="bad table2"):
        submit_plan(plan_experiments(["table1", "table2"], "paper"), "slurm")
    assert calls == []


# ------------------------------------------------------------------ ledger and Slurm


def test_ledger_round_trip_skips_corrupt_lines(tmp_path, caplog):
    configs = tiny_toy(["mdm", "prime-l2-joint"])
    record(tmp_path, configs, ["7_0", "7_1"], "slurm")
    with ledger_path(tmp_path).open("a") as f:
        f.write('{"run_id": "trunc\n[1, 2]\n')
    record(tmp_path, configs[:1], ["9_0"], "slurm", after=["7_1"])
    with caplog.at_level(logging.WARNING, logger="primebench"):
        entries = read_ledger(tmp_path)
    assert [e.job_id for e in entries] == ["7_0", "7_1", "9_0"]
    assert len([r for r in caplog.records if "corrupt ledger line" in r.message]) == 2
    latest = latest_by_run_id(entries)
    assert latest[configs[0].run_id].job_id == "9_0" and latest[configs[0].run_id].after == ["7_1"]
    assert latest[configs[1].run_id].array_id == "7"


def test_squeue_and_sacct_parsing():
    squeue = "120_0|RUNNING|None\n120_[1-3,5%2]|PENDING|Dependency\n\n121|PENDING|Priority\n"
    jobs = parse_squeue(squeue)
    assert jobs["120_0"] == SlurmJob("120_0", "RUNNING", "None")
    assert [jobs[f"120_{i}"].state for i in (1, 2, 3, 5)] == ["PENDING"] * 4
    assert "120_4" not in jobs
    assert jobs["120_2"].describe() == "PENDING (Dependency)"
    assert jobs["120_0"].describe() == "RUNNING" and jobs["120_0"].active
    sacct = (
        "120_0|REQUEUED\n120_0|COMPLETED\n120_0.batch|COMPLETED\n"
        "120_1|CANCELLED by 1000\n120_2|TIMEOUT\n120_[3-4]|PENDING\n"
    )
    done = parse_sacct(sacct)
    assert done["120_0"].state == "COMPLETED" and not done["120_0"].active
    assert done["120_1"].state == "CANCELLED" and done["120_2"].state == "TIMEOUT"
    assert done["120_4"].state == "PENDING" and "120_0.batch" not in done
    assert expand_job_ids("77") == ["77"] and expand_job_ids("7_[x]") == ["7_[x]"]


def test_status_from_the_ledger_and_slurm_without_an_mlflow_run(tmp_path):
    mdm, joint, independent = tiny_toy()
    record(tmp_path / "runs", [mdm, joint], ["55_0", "55_1"], "slurm")
    slurm = {"55_0": SlurmJob("55_0", "PENDING", "Dependency"), "55_1": SlurmJob("55_1", "FAILED")}
    rows = collect_status(
        [mdm, joint, independent],
        sqlite(tmp_path / "none.db"),
        tmp_path / "runs",
        slurm=lambda ids: {j: slurm[j] for j in ids},
    )
    assert [r.state for r in rows] == ["pending", "failed", "not submitted"]
    assert rows[0].slurm == "PENDING (Dependency)" and rows[0].job_id == "55_0"
    assert not (tmp_path / "none.db").exists()  # status creates no store


def test_status_of_a_requeued_run(tmp_path):
    (config,) = tiny_toy(["mdm"])
    uri = sqlite(tmp_path / "mlflow.db")
    tracker = Tracker(uri)
    tracker.requeued(tracker.start(config), 3)
    (row,) = collect_status([config], uri, tmp_path / "runs", slurm=lambda ids: {})
    assert (row.state, row.steps_text) == ("requeued 1x", "3/6")
    tracker.start(config)  # the requeued job resumes
    (row,) = collect_status([config], uri, tmp_path / "runs", slurm=lambda ids: {})
    assert row.state == "running (requeued 1x)"


# ------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny toy run trained to completion in this process."""
    root = tmp_path_factory.mktemp("trained")
    uri, runs = sqlite(root / "mlflow.db"), root / "runs"
    (config,) = tiny_toy(["mdm"])
    launch([config], "debug", tracking_uri=uri, runs_dir=runs)
    return uri, runs, config


def test_status_shows_a_finished_run_and_unrun_variants(trained, capsys):
    uri, runs, config = trained
    rows = collect_status(tiny_toy(), uri, runs, slurm=lambda ids: {})
    assert (rows[0].run_id, rows[0].state, rows[0].step) == (config.run_id, "done", 6)
    assert [r.state for r in rows[1:]] == ["not submitted", "not submitted"]
    assert "3 run(s): 1 done, 2 not submitted" in format_status(rows)

    argv = ["status", "toy2d", "--tracking-uri", uri, "--runs-dir", str(runs), *TINY_SETS]
    assert main(argv) == 0
    header, first = capsys.readouterr().out.splitlines()[:2]
    assert header.split() == [
        "experiment",
        "variant",
        "run",
        "id",
        "state",
        "steps",
        "job",
        "slurm",
    ]
    assert first.split()[:5] == ["toy2d", "mdm", config.run_id, "done", "6/6"]


def test_dry_run_prefers_the_measured_step_time(trained, capsys, tmp_path):
    uri, runs, config = trained
    argv = ["sweep", "toy2d", "--dry-run", "--tracking-uri", uri, "--runs-dir", str(tmp_path)]
    assert main([*argv, "--step-time", "9", *TINY_SETS]) == 0
    out = capsys.readouterr().out
    mdm = next(line for line in out.splitlines() if config.run_id in line)
    assert "measured, this run" in mdm
    others = [line for line in out.splitlines() if line.startswith("toy2d ") and line != mdm]
    assert others and all("median of 1 toy2d run(s)" in line for line in others)
    assert not any(tmp_path.iterdir())  # nothing written


# ------------------------------------------------------------------ dry runs


@pytest.mark.slow  # plans every paper experiment
def test_paper_dry_run_lists_jobs_and_gpu_hours_without_sbatch_or_writes(
    tmp_path, capsys, no_sbatch
):
    where = ["--tracking-uri", sqlite(tmp_path / "mlflow.db"), "--runs-dir", str(tmp_path / "r")]
    assert main([*PAPER, "--dry-run", "--step-time", "0.5", *where]) == 0
    out = capsys.readouterr().out
    table2 = [line for line in out.splitlines() if line.startswith("table2 ")]
    assert len(table2) == 16 and all("table1, table1-hybrid" in line for line in table2)
    (ar,) = [row for row in map(str.split, out.splitlines()) if row[:2] == ["table1", "ar"]]
    # 1,000,000 steps * 0.5 s * 8 GPUs / 3600 = 1,111.1 GPU-h in 2 allocations of 72 h
    assert ar[3:5] == ["1x8", "GPU"] and ar[5] == "72h" and ar[-2:] == ["1,111.1", "2"]
    assert "GPU-h" in out and "nothing is submitted" in out
    # table3's MDM and ell = 2 rows are ell-sweep's runs: listed and counted once
    table3 = [row[1] for row in map(str.split, out.splitlines()) if row[:1] == ["table3"]]
    assert table3 == ["cifar10-mdm-mixture", "imagenet32-mdm-mixture"]
    assert "table3/cifar10-mdm is ell-sweep/cifar10-l1" in out
    assert "table3/imagenet32-prime-l2 is nfe-sweep/imagenet32-l2-nfe1024" in out
    assert "evaluating ell-sweep/imagenet32-l2" in out and "each counted once" in out
    assert not any(tmp_path.iterdir())

    assert main([*PAPER, "--dry-run", *where]) == 0
    assert UNKNOWN_STEP_TIME in capsys.readouterr().out


# ------------------------------------------------------------------ bad input


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("primebench: error: "), captured.err
    return lines[0]


def test_profile_gpus_not_dividing_the_global_batch_is_an_error(tmp_path, capsys, no_sbatch):
    profile = tmp_path / "three.yaml"
    profile.write_text("nodes: 1\ngpus_per_node: 3\n")
    runs = tmp_path / "runs"
    argv = ["sweep", "toy2d", "--cluster", "slurm", "--profile", str(profile)]
    line = _error(capsys, [*argv, "--runs-dir", str(runs)])
    assert "train.global_batch_size: 1024 rows do not split over 3 ranks" in line
    assert "expected a multiple of 3" in line and not runs.exists()
    line = _error(capsys, [*argv, "--dry-run"])  # a dry run checks the same
    assert "expected a multiple of 3" in line


def test_unknown_profile_key_is_an_error(tmp_path, capsys):
    profile = tmp_path / "typo.yaml"
    profile.write_text("gpus: 2\n")
    line = _error(capsys, ["sweep", "toy2d", "--cluster", "slurm", "--profile", str(profile)])
    assert "unknown setting(s) gpus" in line and "gpus_per_node" in line


def test_slurm_without_sbatch_is_an_error(tmp_path, capsys, no_sbatch):
    runs = tmp_path / "runs"
    argv = ["sweep", "toy2d", "--cluster", "slurm", "--profile", "local-test"]
    line = _error(capsys, [*argv, "--runs-dir", str(runs)])
    assert "--cluster slurm: sbatch is not on PATH" in line and not runs.exists()
    line = _error(capsys, [*PAPER, "--runs-dir", str(runs)])
    assert "sbatch is not on PATH" in line and not runs.exists()
