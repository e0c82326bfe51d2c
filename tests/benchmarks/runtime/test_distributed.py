"""Data parallelism: the same steps on 1 or N ranks, sharding, resume on another world size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmarks.config.overrides import deep_merge
from benchmarks.config.train_config import TrainConfig
from benchmarks.core import ConfigError
from benchmarks.data.loader import StepSampler, draw_global_batch
from benchmarks.launch.launcher import launch
from benchmarks.launch.profiles import (
    ClusterProfile,
    check_slurm_can_run,
    load_profile,
    partition_nodes,
)
from benchmarks.runtime.preemption import SIGNAL_AT_STEP_ENV, Preempted
from benchmarks.tracking.tracker import RUN_ID_TAG, Tracker
from benchmarks.training.hardware import select_hardware
from benchmarks.training.runner import execute
from prime import BatchShard, MaskedDiffusion, SubTokenizer
from prime.backbones import DiT, DiTConfig, ToyMLP
from tests.helpers import tiny_toy

# No dropout: the network's own randomness is the one stream that depends on the split.
DDP = {
    "train": {"checkpoint_every": 100, "loader_workers": 1},
    "model": {"backbone": {"dropout": 0.0}},
    "task": {"eval_passes": 1, "sample_count": 64, "sample_batch": 64},
}


def tiny_config(**train):
    (config,) = tiny_toy(["prime-l2-joint"], deep_merge(DDP, {"train": train}))
    return config


@pytest.mark.parametrize("world, accumulation", [(1, 1), (2, 1), (2, 2), (4, 2), (3, 1)])
def test_rank_shards_of_a_step_are_the_global_draw_exactly_once(world, accumulation):
    global_batch = 4 * world * accumulation
    micro = global_batch // (world * accumulation)
    seed_of = lambda step: 1000 + step  # noqa: E731
    rows = {}
    for rank in range(world):
        sampler = StepSampler(50, global_batch, micro, accumulation, rank, world, seed_of)
        sampler.start_step = 5
        it = iter(sampler)
        for _ in range(2 * accumulation):  # steps 5 and 6
            key = next(it)
            for offset in range(micro):
                rows.setdefault(key.step, {})[key.row_start + offset] = int(key.indices[offset])
    for step in (5, 6):
        expected, _ = draw_global_batch(50, global_batch, seed_of(step))
        assert sorted(rows[step]) == list(range(global_batch))  # every row once
        assert [rows[step][i] for i in range(global_batch)] == expected.tolist()


def test_batch_split_errors_name_the_field():
    assert TrainConfig(global_batch_size=512, micro_batch_size=16).split(8) == (16, 4)
    assert TrainConfig(global_batch_size=512).split(8) == (64, 1)
    with pytest.raises(ConfigError, match=r"train\.global_batch_size: 512 rows .* 3 ranks"):
        TrainConfig(global_batch_size=512).split(3)
    with pytest.raises(ConfigError, match=r"train\.micro_batch_size: 48 does not divide the 64"):
        TrainConfig(global_batch_size=512, micro_batch_size=48).split(8)
    with pytest.raises(ConfigError, match=r"profile\.ranks_per_node: with GPUs"):
        ClusterProfile(gpus_per_node=8, ranks_per_node=2)


def test_run_id_ignores_how_the_steps_are_executed():
    base = tiny_config()
    assert tiny_config(micro_batch_size=16, loader_workers=0).run_id == base.run_id
    assert tiny_config(global_batch_size=32).run_id != base.run_id


def test_sharded_losses_equal_the_global_batch_loss():
    codec = SubTokenizer(8, 2)
    network = ToyMLP(2, 2, codec.base, 8, emb_dim=4, hidden=16, depth=1, dropout=0.0)
    model = MaskedDiffusion(network, codec, objective="valid")
    torch.manual_seed(0)
    x0 = torch.randint(0, 8, (12, 2))

    def loss(rows, shard):
        gen = torch.Generator().manual_seed(7)
        return model.training_loss(x0[rows], gen, shard=shard)[0]

    full = loss(slice(0, 12), None)
    parts = [loss(slice(lo, lo + 4), BatchShard(lo, 4, 12)) for lo in (0, 4, 8)]
    torch.testing.assert_close(torch.stack(parts).mean(), full, rtol=1e-6, atol=1e-6)


def _history(uri: str, config) -> dict[int, float]:
    tracker = Tracker(uri)
    exp = tracker.experiment_id(config.experiment)
    (run,) = tracker.client.search_runs([exp], f"tags.`{RUN_ID_TAG}` = '{config.run_id}'")
    history = tracker.client.get_metric_history(run.info.run_id, "train/loss")
    steps = [m.step for m in history]
    assert len(steps) == len(set(steps)), f"duplicated metric steps {sorted(steps)}"
    return {m.step: m.value for m in history}


def _weights(runs_dir: Path, config) -> dict[str, torch.Tensor]:
    path = runs_dir / config.run_id / "checkpoints" / "last.ckpt"
    return torch.load(path, weights_only=False)["state_dict"]


def assert_same_training(a: tuple[str, Path], b: tuple[str, Path], config) -> None:
    loss_a, loss_b = _history(a[0], config), _history(b[0], config)
    assert sorted(loss_a) == sorted(loss_b) == list(range(config.train.steps))
    for step in loss_a:
        assert loss_a[step] == pytest.approx(loss_b[step], rel=1e-5, abs=1e-6), step
    wa, wb = _weights(a[1], config), _weights(b[1], config)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_one_process_and_two_gloo_ranks_take_the_same_steps(tmp_path):
    config = tiny_config()
    one = (f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "one")
    two = (f"sqlite:///{tmp_path / 'two.db'}", tmp_path / "two")
    launch([config], "local", tracking_uri=one[0], runs_dir=one[1])
    (result,) = launch(
        [config], "local", profile=load_profile("cpu-ddp"), tracking_uri=two[0], runs_dir=two[1]
    )
    assert result["rank"] == 0
    (run,) = Tracker(two[0]).client.search_runs([Tracker(two[0]).experiment_id(config.experiment)])
    assert run.data.tags["runtime.world_size"] == "2"
    assert run.data.tags["runtime.backend"] == "gloo"
    assert run.data.tags["runtime.micro_batch_size"] == "32"
    assert_same_training(one, two, config)


@pytest.mark.slow
def test_a_run_stopped_on_one_rank_resumes_on_two_with_the_same_data_order(tmp_path, monkeypatch):
    config = tiny_config()
    reference = (f"sqlite:///{tmp_path / 'ref.db'}", tmp_path / "ref")
    execute(config, *reference)

    moved = (f"sqlite:///{tmp_path / 'moved.db'}", tmp_path / "moved")
    monkeypatch.setenv(SIGNAL_AT_STEP_ENV, "2")
    with pytest.raises(Preempted):
        execute(config, *moved)  # one process, stopped with a checkpoint at step 2
    monkeypatch.delenv(SIGNAL_AT_STEP_ENV)
    launch(
        [config], "local", profile=load_profile("cpu-ddp"), tracking_uri=moved[0], runs_dir=moved[1]
    )
    assert_same_training(reference, moved, config)


@pytest.mark.slow
def test_local_two_rank_job_requeues_itself_on_the_warning_signal(tmp_path, monkeypatch):
    config = tiny_config()
    reference = (f"sqlite:///{tmp_path / 'ref.db'}", tmp_path / "ref")
    execute(config, *reference)
    requeued = (f"sqlite:///{tmp_path / 'requeued.db'}", tmp_path / "requeued")
    monkeypatch.setenv(SIGNAL_AT_STEP_ENV, "3")  # inherited by the job's ranks
    (result,) = launch(
        [config],
        "local",
        profile=load_profile("cpu-ddp"),
        tracking_uri=requeued[0],
        runs_dir=requeued[1],
    )
    tracker = Tracker(requeued[0])
    (run,) = tracker.client.search_runs([tracker.experiment_id(config.experiment)])
    assert run.data.tags["primebench.requeues"] == "1"
    assert run.data.tags["primebench.state"] == "done"
    assert run.info.status == "FINISHED"
    (log,) = (requeued[1] / "submitit").rglob("*_0_log.err")
    assert log.read_text().count("Caught signal SIGUSR2") == 1  # submitit's requeue path
    assert "Restored all states from the checkpoint" in log.read_text()
    assert_same_training(reference, requeued, config)


def test_cpu_hardware_turns_every_gpu_setting_off():
    hw = select_hardware(TrainConfig(compile=True, tf32=True))
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    assert (hw.accelerator, hw.backend, hw.precision) == ("cpu", "gloo", "32-true")
    assert not hw.compile and not hw.tf32 and not hw.pin_memory and hw.peak_tflops is None
    assert hw.tags()["runtime.precision"] == "32-true"


def test_dit_flops_per_token_counts_the_per_token_matmuls():
    cfg = DiTConfig(hidden=64, depth=2, heads=4, cond_dim=16, dropout=0.0)
    net = DiT(cfg, base=10, ell=1, out_dim=10)
    d, m = cfg.hidden, cfg.mlp_ratio
    matmuls = cfg.depth * (3 * d * d + d * d + 2 * m * d * d) + d * 10
    assert net.flops_per_token(32) == 6 * matmuls + 12 * cfg.depth * d * 32


def test_training_logs_throughput_and_the_runtime_it_chose(tmp_path):
    config = tiny_config(steps=6, log_every=2, loader_workers=0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    execute(config, uri, tmp_path / "runs")
    tracker = Tracker(uri)
    (run,) = tracker.client.search_runs([tracker.experiment_id(config.experiment)])
    steps = [
        m.step
        for m in tracker.client.get_metric_history(run.info.run_id, "perf/samples_per_s_per_device")
    ]
    assert steps == [3, 5]  # on the logging grid; the first grid point starts the clock
    assert run.data.metrics["perf/tokens_per_s_per_device"] > 0
    tags = run.data.tags
    assert tags["runtime.world_size"] == "1" and tags["runtime.accelerator"] == "cpu"
    assert tags["runtime.micro_batch_size"] == "64" and tags["runtime.accumulation"] == "1"


def test_gradient_accumulation_takes_the_same_steps_as_one_micro_batch(tmp_path):
    whole, split = tiny_config(loader_workers=0), tiny_config(micro_batch_size=16, loader_workers=0)
    assert split.run_id == whole.run_id
    one = (f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "one")
    four = (f"sqlite:///{tmp_path / 'four.db'}", tmp_path / "four")
    execute(whole, *one)
    execute(split, *four)  # 4 micro-batches of 16 rows per step
    assert_same_training(one, four, whole)


def test_partition_nodes_add_up_sinfo_lines_and_name_unknown_partitions():
    out = "3 gpu* \n5 gpu*\n2 cpu\n"
    assert partition_nodes(out, None) == 8 and partition_nodes(out, "cpu") == 2
    unknown = r"profile\.partition: 'a100' is not a partition.*cpu, gpu"
    with pytest.raises(ConfigError, match=unknown):
        partition_nodes(out, "a100")


def test_more_nodes_than_the_partition_has_is_an_error_before_submission(tmp_path, monkeypatch):
    for name, text in (("sinfo", 'echo "1 debug*"'), ("sbatch", "exit 1")):
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\n{text}\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    check_slurm_can_run(ClusterProfile(nodes=1))
    with pytest.raises(ConfigError, match=r"profile\.nodes: the default partition has 1 node"):
        check_slurm_can_run(ClusterProfile(nodes=2))
    with pytest.raises(ConfigError, match=r"profile\.partition: 'gpu' is not a partition"):
        check_slurm_can_run(ClusterProfile(partition="gpu"))
