"""The window search's block times stratified per group of rows of a search batch
(model.window_search_strata; bd3lms's validation stratifies each GPU's call of 16 rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines import BlockDiffusion
from baselines.clipped_windows import window_moments
from benchmarks.core import ConfigError
from benchmarks.data.loader import ArrayRows
from benchmarks.models.bd3lm import BD3LMParams
from benchmarks.models.window_search import WindowSearch
from prime import SubTokenizer
from tests.baselines.test_block_diffusion import _network

WINDOW = (0.3, 0.8)
SEED = 11


def _search_times(strata, **split) -> dict[tuple[int, int], torch.Tensor]:
    """(batch start row, shard start row) -> the (rows, blocks) times the search drew, for
    16 rows of 8 tokens (2 blocks of 4) in batches of 8."""
    codec = SubTokenizer(20, 1)
    model = BlockDiffusion(_network(codec), codec, 4)
    seen = {}

    def record(x0, window, generator, shard):
        t, _ = model.corrupt(x0, generator, shard=shard, window=window)
        seen[(int(x0[0, 0]), shard.start)] = t.double()
        return t

    model.block_mean_losses = record
    # Row i starts with token i, so a record names its first row.
    x0 = torch.randint(0, 20, (16, 8), generator=torch.Generator().manual_seed(0))
    x0[:, 0] = torch.arange(16)
    window_moments(model, x0, [WINDOW], SEED, 8, strata=strata, **split)
    return seen


def _batch(seen: dict, first_row: int) -> torch.Tensor:
    """The times of the 8-row batch starting at ``first_row``, rows in order."""
    parts = sorted((k[1], t) for k, t in seen.items() if first_row <= k[0] < first_row + 8)
    return torch.cat([t for _, t in parts])


def _unit(t: torch.Tensor) -> torch.Tensor:
    return (t - WINDOW[0]) / (WINDOW[1] - WINDOW[0])


def test_each_group_of_four_rows_by_two_blocks_holds_one_time_per_eighth():
    seen = _search_times(4)
    for first in (0, 8):
        strata = (_unit(_batch(seen, first)) * 8).floor().long()
        # (row k, block b) in stratum 2 (k mod 4) + b of the group's 4 x 2 = 8
        assert strata.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]] * 2
    # Batch 0's generator is seeded with the search seed itself: one uniform r per
    # (row, block) of the batch, u = (r + (2 k + b) mod 8) / 8.
    r = torch.rand(16, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
    k = torch.arange(16, dtype=torch.float64) % 8
    want = WINDOW[0] + (WINDOW[1] - WINDOW[0]) * (r + k) / 8
    torch.testing.assert_close(_batch(seen, 0).flatten(), want, rtol=0, atol=1e-6)


def test_without_groups_the_strata_span_the_whole_batch():
    strata = (_unit(_batch(_search_times(None), 0)) * 16).floor().long()
    assert strata.flatten().tolist() == list(range(16))  # 8 rows x 2 blocks, one each


def test_the_grouped_times_do_not_depend_on_ranks_or_chunks():
    whole = _search_times(4)
    ranks = {}
    for rank in (0, 1):
        ranks |= _search_times(4, rank=rank, world=2, chunk_rows=1)
    for first in (0, 8):
        assert torch.equal(_batch(ranks, first), _batch(whole, first))


def test_the_setting_is_validated_and_left_out_of_run_ids_at_its_default():
    for bad in (0, 3, 256):
        with pytest.raises(ConfigError, match=r"model\.window_search_strata: expected null"):
            BD3LMParams(window_search_batch=128, window_search_strata=bad)
    assert BD3LMParams(window_search_batch=128, window_search_strata=16).window_search_strata
    assert "window_search_strata" in BD3LMParams.LATER_FIELDS
    rows = ArrayRows(np.zeros((24, 8), dtype=np.int64))
    WindowSearch(rows, 1, 24, 0, 16, strata=8)  # batches of 16 and 8 rows
    with pytest.raises(ConfigError, match=r"model\.window_search_strata: .*\[8, 16\] of 24"):
        WindowSearch(rows, 1, 24, 0, 16, strata=16)
