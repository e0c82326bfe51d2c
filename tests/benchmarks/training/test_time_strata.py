"""Training times stratified over groups of rows of the global batch (train.time_strata)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from baselines import BlockDiffusion
from benchmarks.config.train_config import TrainConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.training.lightning_module import TrainingModule
from prime import BatchShard, SubTokenizer, sample_times
from prime.backbones import DiT, DiTConfig

EPS = 1e-3


def _times(seed: int, shard: BatchShard) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return sample_times(shard.size, eps=EPS, generator=gen, shard=shard, dtype=torch.float64)


def _unit(t: torch.Tensor, low: float = EPS, high: float = 1.0) -> torch.Tensor:
    """The u in [0, 1) of t = low + (high - low) u."""
    return (t - low) / (high - low)


@pytest.mark.parametrize("seed", range(5))
def test_each_group_of_four_has_one_time_per_quarter(seed):
    t = _times(seed, BatchShard(0, 8, 8, strata=4))
    quarters = (_unit(t) * 4).floor().long()
    assert quarters.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # row j in quarter j mod 4
    # Each row its own uniform r_j from the step's stream: u_j = (r_j + j mod 4) / 4.
    r = torch.rand(8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    k = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3], dtype=torch.float64)
    torch.testing.assert_close(t, EPS + (1 - EPS) * (r + k) / 4, rtol=0, atol=1e-15)


@pytest.mark.parametrize("rows", [8, 4, 2])  # 1 x 8, 2 ranks x 4, 4 micro-batches of 2
def test_times_do_not_depend_on_the_split(rows):
    whole = _times(3, BatchShard(0, 8, 8, strata=4))
    parts = [_times(3, BatchShard(lo, rows, 8, strata=4)) for lo in range(0, 8, rows)]
    assert torch.equal(torch.cat(parts), whole)


def test_strata_over_the_whole_batch_is_the_default():
    assert torch.equal(_times(2, BatchShard(0, 8, 8, strata=8)), _times(2, BatchShard(0, 8, 8)))


def test_one_stratum_per_row_is_independent_uniforms():
    t = _times(4, BatchShard(0, 64, 64, strata=1))
    r = torch.rand(64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(_unit(t), r, rtol=0, atol=1e-12)  # u_j = r_j, nothing added
    # No structure between rows: rows 0 and 1 share a half about half the time, where two
    # strata would put them in different halves every time.
    same = [
        (_unit(_times(s, BatchShard(0, 2, 2, strata=1))) * 2).floor().unique().numel() == 1
        for s in range(400)
    ]
    assert 0.4 < sum(same) / 400 < 0.6
    paired = [
        (_unit(_times(s, BatchShard(0, 2, 2, strata=2))) * 2).floor().unique().numel()
        for s in range(50)
    ]
    assert set(paired) == {2}


def test_block_times_are_stratified_over_each_groups_rows_by_blocks():
    codec = SubTokenizer(20, 1)
    cfg = DiTConfig(hidden=16, depth=1, heads=2, cond_dim=8, dropout=0.0)
    model = BlockDiffusion(
        DiT(cfg, codec.base, codec.ell, codec.num_classes), codec, 4, window=(0.3, 0.8)
    )
    x0 = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(0))
    t, _ = model.corrupt(x0, torch.Generator().manual_seed(1), shard=BatchShard(0, 4, 4, 2))
    # 2 rows x 2 blocks per group: (row k, block b) in stratum 2 (k mod 2) + b of 4.
    strata = (_unit(t, 0.3, 0.8) * 4).floor().long()
    assert strata.tolist() == [[0, 1], [2, 3], [0, 1], [2, 3]]
    half, _ = model.corrupt(x0[2:], torch.Generator().manual_seed(1), shard=BatchShard(2, 2, 4, 2))
    assert torch.equal(half, t[2:])


def test_bad_strata_error_names_the_field():
    for bad in (0, -4, 3, 24):
        with pytest.raises(ConfigError, match=r"train\.time_strata: expected null or a divisor"):
            TrainConfig(global_batch_size=512, time_strata=bad)
    with pytest.raises(ConfigError, match=r"train\.time_strata: expected an integer"):
        build_dataclass(TrainConfig, {"time_strata": 2.5}, "train")
    with pytest.raises(ValueError, match="strata: expected a divisor of the global batch of 8"):
        BatchShard(0, 8, 8, strata=3)


def test_strata_is_in_the_run_id_only_when_set():
    assert "time_strata" not in TrainConfig().math_dict()
    assert TrainConfig(global_batch_size=512, time_strata=16).math_dict()["time_strata"] == 16


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.shards: list[BatchShard] = []

    def training_loss(self, x0, generator, shard):
        self.shards.append(shard)
        return self.weight * 0.0, {}


def test_training_hands_the_setting_to_each_micro_batch():
    model = _Recorder()
    train = TrainConfig(global_batch_size=8, time_strata=4)
    sampler = SimpleNamespace(accumulation=2, world_size=1)
    module = TrainingModule(model, train, 0, sampler, "run")
    batch = {"step": 0, "micro": 0, "row_start": 4, "global_size": 8, "x0": torch.zeros(4, 3)}
    module.training_step(batch, 0)
    assert model.shards == [BatchShard(4, 4, 8, strata=4)]
