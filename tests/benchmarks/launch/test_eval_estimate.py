"""The dry run's estimate of an evaluation split over the ranks of its job: a time scales
with the ranks it was measured on, a throughput per device with the job's ranks, both up
to the evaluation's shards (its sampler calls), and device-hours stay the same."""

from __future__ import annotations

import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.core import Metric
from benchmarks.launch.dryrun import dry_run
from benchmarks.launch.estimate import (
    Layout,
    StepTime,
    estimate,
    measured_eval_time,
)
from benchmarks.launch.eval_scaling import SPLIT, evaluation_shards, speedup
from benchmarks.launch.plan import PlannedExperiment
from benchmarks.launch.profiles import load_profile
from benchmarks.registry import TASKS
from benchmarks.tracking.store_reader import StoreReader
from benchmarks.tracking.tracker import EVAL_TIME_METRIC, SAMPLES_METRIC, Tracker
from tests.helpers import sqlite, tiny_toy

PER_BATCH = {"train": {"steps": 0}, "task": {"sample_seeding": "per-batch"}}


def _gpus(ranks: int, timeout_min: int | None = None) -> Layout:
    return Layout(nodes=1, ranks_per_node=ranks, gpus_per_node=ranks, timeout_min=timeout_min)


def _images(count: int = 1000, variant: str = "mdm"):
    """An evaluation-only image run: ``count`` samples, 125 per call, split over ranks."""
    overrides = {**PER_BATCH, "task": {**PER_BATCH["task"], "sample_count": count}}
    (config,) = load_experiment("image-cpu").resolve("cpu", overrides, [variant])
    return config


def _released_text():
    four_calls = {"task": {"sample_count": 100}}  # 4 sampler calls of 25 (table1: 5,000)
    (config,) = load_experiment("table1").resolve("paper", four_calls, ["prime-l2"], "released")
    return config


def _log(tracker: Tracker, config, ranks: int, metrics: list[Metric]) -> None:
    run = tracker.start(config)
    tracker.set_tags(run, {"runtime.world_size": str(ranks)})
    tracker.log_metrics(run, metrics)
    tracker.finish(run)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """1,000 images (8 sampler calls) evaluated in 100 s on 2 ranks at 50 samples/s per
    device; the released table1 prime-l2 file evaluated in 30 h on one rank."""
    uri = sqlite(tmp_path_factory.mktemp("store") / "mlflow.db")
    tracker = Tracker(uri)
    card = {"device": "cuda:0 (test GPU)", "ranks": 2}
    timed = [Metric(EVAL_TIME_METRIC, 100.0, card), Metric(SAMPLES_METRIC, 50.0, card)]
    _log(tracker, _images(), 2, timed)
    _log(tracker, _released_text(), 1, [Metric(EVAL_TIME_METRIC, 30 * 3600.0, card)])
    return uri


# ------------------------------------------------------------------ the speed-up


def test_speedup_is_the_ranks_up_to_the_shards():
    assert speedup(4, None) == 4.0
    assert speedup(4, 500) == 4.0  # 4 divides 500: 125 calls per rank
    assert speedup(8, 4) == 4.0  # 4 calls keep 4 of 8 ranks busy
    assert speedup(3, 4) == 2.0  # one rank makes 2 of the 4 calls: twice as fast as one
    assert speedup(1, 7) == 1.0
    with pytest.raises(ValueError, match="ranks"):
        speedup(0, 4)
    with pytest.raises(ValueError, match="shards"):
        speedup(2, 0)


def test_the_shards_are_the_sampler_calls_the_settings_give():
    assert evaluation_shards(_images()) == 8  # 1,000 / 125
    assert evaluation_shards(_images(1001)) == 9  # the last call draws one image
    assert evaluation_shards(_released_text()) == 4  # 100 samples, 25 per call
    (stream,) = load_experiment("image-cpu").resolve("cpu", None, ["mdm"])
    assert evaluation_shards(stream) == 1  # one generator, drawn in order by the main rank
    (table3,) = load_experiment("table3").resolve("paper", None, ["cifar10-prime-l2"])
    assert evaluation_shards(table3) == 500  # 50,000 images, 100 per call
    (cpu,) = load_experiment("table1-cpu").resolve("cpu", None, ["mdlm"])
    assert cpu.task.params.sample_batch == 4 and evaluation_shards(cpu) == 4  # 16, 4 per call
    (zero_shot,) = load_experiment("table2").resolve("paper", None, ["mdlm"])
    assert evaluation_shards(zero_shot) is None  # likelihood batches only: any ranks
    (toy,) = tiny_toy(["mdm"])
    assert evaluation_shards(toy) == 1  # every rank evaluates all of it
    assert SPLIT <= set(TASKS.names())


# ------------------------------------------------------------------ estimates


def test_a_time_measured_on_2_ranks_takes_half_on_4_for_the_same_device_hours(store):
    config = _images()
    measured = measured_eval_time(StoreReader(store), config)
    assert (measured.seconds, measured.world) == (100.0, 2)
    two, four, one = (estimate(config, None, _gpus(r), measured) for r in (2, 4, 1))
    assert two.wall_hours == pytest.approx(100.0 / 3600)
    assert four.wall_hours == pytest.approx(two.wall_hours / 2)
    assert one.wall_hours == pytest.approx(two.wall_hours * 2)
    assert four.device_hours == pytest.approx(two.device_hours) == pytest.approx(200.0 / 3600)
    assert one.device_hours == pytest.approx(two.device_hours)


def test_the_speed_up_stops_at_the_sampler_calls():
    config = _released_text()  # 4 sampler calls
    hour = StepTime(3600.0, 1, "measured on one rank")
    walls = {r: estimate(config, None, _gpus(r), hour).wall_hours for r in (1, 2, 3, 4, 8)}
    assert walls == pytest.approx({1: 1.0, 2: 0.5, 3: 0.5, 4: 0.25, 8: 0.25})
    on_8 = estimate(config, None, _gpus(8), hour)
    assert on_8.device_hours == pytest.approx(2.0)  # 4 of the 8 GPUs held idle meanwhile
    # Measured on 8 ranks, it stood for 4 busy ranks: one rank takes 4 times as long.
    eight = StepTime(900.0, 8, "measured on 8 ranks")
    assert estimate(config, None, _gpus(1), eight).wall_hours == pytest.approx(1.0)


def test_a_throughput_per_device_scales_with_the_ranks(store):
    config = _images(2000)  # 16 sampler calls; no time measured at this count
    rate = measured_eval_time(StoreReader(store), config)
    assert rate.seconds == pytest.approx(2000 / 50.0) and rate.world == 1
    assert "per device on cuda:0 (test GPU)" in rate.source
    for ranks, seconds in ((1, 40.0), (4, 10.0), (8, 5.0), (12, 5.0), (32, 2.5)):
        est = estimate(config, None, _gpus(ranks), rate)
        # N / (rate x R) while every rank has a call; 12 ranks: 16 calls, 2 rounds; 32: 16.
        assert est.wall_hours == pytest.approx(seconds / 3600), ranks
    assert estimate(config, None, _gpus(4), rate).device_hours == pytest.approx(40.0 / 3600)


def test_the_median_pools_times_taken_back_to_one_rank(store):
    other = _images(variant="prime-l2")  # another variant: the experiment's median
    pooled = measured_eval_time(StoreReader(store), other)
    assert pooled.source == "measured, median of 1 run(s)"
    assert (pooled.seconds, pooled.world) == (200.0, 1)  # 100 s on 2 ranks


# ------------------------------------------------------------------ the dry run's text


def test_the_dry_run_says_a_cut_evaluation_resumes(store, capsys):
    plan = [PlannedExperiment("table1", [_released_text()])]
    (est,) = dry_run(plan, "local", load_profile("gpu-1x"), tracking_uri=store)
    out = capsys.readouterr().out
    assert est.wall_hours == pytest.approx(30.0) and est.allocations == 2  # 24 h limit
    assert "does not resume" not in out and "one device" not in out
    assert "each evaluation splits over its job's ranks" in out
    assert "above the 24h limit: it resumes from its kept shards, in 2 allocation(s)" in out

    (est,) = dry_run(plan, "local", load_profile("gpu-8x"), tracking_uri=store)
    out = capsys.readouterr().out
    assert est.wall_hours == pytest.approx(30.0 / 4)  # 4 sampler calls: 4 busy ranks
    assert "1 of them sample in fewer sampler calls (as few as 4)" in out
    assert "--profile gpu-1x holds one GPU per job" in out
