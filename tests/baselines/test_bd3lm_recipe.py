"""BD3-LM's recipe pieces: the candidate windows, mask-rate resampling and window scoring."""

from __future__ import annotations

import itertools

import pytest
import torch

from baselines import DEFAULT_WINDOWS, BlockDiffusion
from baselines.block_masks import count_bounds, mask_blocks_in_window
from baselines.clipped_windows import variances_from_moments, window_moments
from prime import BatchShard, SubTokenizer
from tests.baselines.test_block_diffusion import _network

# bd3lms metrics.py:72-86 with clip_search_widths [0.5, ..., 0.9] and delta 0.05, written
# out (0.0 stands for eps): the full window, then each width's windows from beta = 0 up.
BD3LM_GRID = [
    (0.0, 1.0),
    *[(0.0, 0.5), (0.05, 0.55), (0.1, 0.6), (0.15, 0.65), (0.2, 0.7), (0.25, 0.75)],
    *[(0.3, 0.8), (0.35, 0.85), (0.4, 0.9), (0.45, 0.95), (0.5, 1.0)],
    *[(0.0, 0.6), (0.05, 0.65), (0.1, 0.7), (0.15, 0.75), (0.2, 0.8), (0.25, 0.85)],
    *[(0.3, 0.9), (0.35, 0.95), (0.4, 1.0)],
    *[(0.0, 0.7), (0.05, 0.75), (0.1, 0.8), (0.15, 0.85), (0.2, 0.9), (0.25, 0.95), (0.3, 1.0)],
    *[(0.0, 0.8), (0.05, 0.85), (0.1, 0.9), (0.15, 0.95), (0.2, 1.0)],
    *[(0.0, 0.9), (0.05, 0.95), (0.1, 1.0)],
]


def test_the_candidates_are_bd3lms_grid_in_its_order():
    assert len(DEFAULT_WINDOWS) == len(BD3LM_GRID) == 36
    flat = [end for window in DEFAULT_WINDOWS for end in window]
    assert flat == pytest.approx([end for window in BD3LM_GRID for end in window], abs=1e-12)
    # A beta of 0 is eps once set, as bd3lms clamps it (metrics.py:79).
    codec = SubTokenizer(20, 1)
    model = BlockDiffusion(_network(codec), codec, 4)
    model.set_window(DEFAULT_WINDOWS[1])
    assert model.training_window == pytest.approx((1e-3, 0.5))


def _masked_fraction(y_t: torch.Tensor, block: int, mask_id: int) -> list[torch.Tensor]:
    """Per block, the fraction of its sub-tokens that are masked: (B,) each."""
    masked = (y_t == mask_id).double()
    return [masked[:, s : s + block].mean(dim=(1, 2)) for s in range(0, y_t.shape[1], block)]


@pytest.mark.parametrize("ell", [1, 2])
def test_resampled_blocks_are_masked_inside_the_window(ell):
    codec = SubTokenizer(20, ell)
    # L = 10, L' = 4: the last block has 2 tokens.
    model = BlockDiffusion(_network(codec), codec, 4, window=(0.3, 0.8), resample=True)
    x0 = torch.randint(0, 20, (200, 10), generator=torch.Generator().manual_seed(0))
    _, y_t = model.corrupt(x0, torch.Generator().manual_seed(1))
    assert torch.equal(y_t[y_t != codec.mask_id], codec.encode(x0)[y_t != codec.mask_id])
    for fraction in _masked_fraction(y_t, 4, codec.mask_id):
        assert bool(((fraction >= 0.3 - 1e-12) & (fraction <= 0.8 + 1e-12)).all())
    # Without resampling, blocks fall outside the window.
    plain = BlockDiffusion(_network(codec), codec, 4, window=(0.3, 0.8))
    _, y_plain = plain.corrupt(x0, torch.Generator().manual_seed(1))
    outside = [((f < 0.3) | (f > 0.8)).any() for f in _masked_fraction(y_plain, 4, codec.mask_id)]
    assert any(bool(o) for o in outside)


def test_an_end_of_the_full_window_is_not_enforced():
    codec = SubTokenizer(20, 1)
    x0 = torch.randint(0, 20, (400, 8), generator=torch.Generator().manual_seed(0))
    upper = BlockDiffusion(_network(codec), codec, 4, window=(0.0, 0.5), resample=True)
    _, y_t = upper.corrupt(x0, torch.Generator().manual_seed(2))
    fractions = torch.cat(_masked_fraction(y_t, 4, codec.mask_id))
    assert bool((fractions <= 0.5).all()) and bool((fractions == 0).any())  # clean blocks stay
    lower = BlockDiffusion(_network(codec), codec, 4, window=(0.3, 1.0), resample=True)
    _, y_t = lower.corrupt(x0, torch.Generator().manual_seed(2))
    fractions = torch.cat(_masked_fraction(y_t, 4, codec.mask_id))
    assert bool((fractions >= 0.3).all()) and bool((fractions == 1).any())


@pytest.mark.parametrize(("p", "window"), [(0.3, (0.25, 0.75)), (0.6, (0.5, 1.0))])
def test_resampled_masks_follow_bernoulli_draws_conditioned_on_the_window(p, window):
    # One block of n = 4: P(m) = p^|m| (1 - p)^(4 - |m|) / Z over the masks whose |m| / 4
    # lies in the window, the law of redrawing until it does (uniform within each count).
    n, draws = 4, 40_000
    y0 = torch.zeros(draws, n, 1, dtype=torch.long)
    y_t = mask_blocks_in_window(
        y0,
        torch.full((draws, 1), p, dtype=torch.float64),
        n,
        window,
        mask_id=9,
        low=True,
        high=window[1] < 1,
        generator=torch.Generator().manual_seed(0),
    )
    codes = ((y_t[..., 0] == 9).long() * (2 ** torch.arange(n))).sum(-1)
    counts = torch.bincount(codes, minlength=2**n).double()
    masks = list(itertools.product([0, 1], repeat=n))
    weight = {}
    for bits in masks:
        k = sum(bits)
        allowed = window[0] <= k / n <= window[1]
        weight[bits] = p**k * (1 - p) ** (n - k) if allowed else 0.0
    z = sum(weight.values())
    for bits in masks:
        code = sum(b << i for i, b in enumerate(bits))
        prob = weight[bits] / z
        if prob == 0:
            assert counts[code] == 0, bits
            continue
        se = (prob * (1 - prob) / draws) ** 0.5
        assert abs(counts[code] / draws - prob) < 5 * se, bits


def test_resampling_does_not_depend_on_the_batch_split():
    codec = SubTokenizer(20, 2)
    model = BlockDiffusion(_network(codec), codec, 3, window=(0.2, 0.7), resample=True)
    x0 = torch.randint(0, 20, (8, 10), generator=torch.Generator().manual_seed(0))
    t, y_t = model.corrupt(x0, torch.Generator().manual_seed(5))
    shard_t, shard_y = model.corrupt(
        x0[3:7], torch.Generator().manual_seed(5), shard=BatchShard(3, 4, 8)
    )
    assert torch.equal(shard_t, t[3:7]) and torch.equal(shard_y, y_t[3:7])


def test_a_window_no_block_fraction_can_meet_is_an_error():
    # A block of 2 sub-tokens has fractions 0, 1/2, 1: none in [0.6, 0.9].
    with pytest.raises(ValueError, match=r"no masked fraction k/2 .* \[0.6, 0.9\]"):
        count_bounds(torch.tensor([4, 2]), (0.6, 0.9), True, True)


def test_the_score_is_the_summed_per_batch_variance_of_block_means_however_split():
    codec = SubTokenizer(20, 1)
    model = BlockDiffusion(_network(codec), codec, 4, resample=True)
    x0 = torch.randint(0, 20, (12, 16), generator=torch.Generator().manual_seed(1))
    windows = DEFAULT_WINDOWS[:4]
    moments = window_moments(model, x0, windows, seed=7, batch_rows=4)
    # Batch 0 draws from the seed itself: its variance is that of the block means.
    for k, window in enumerate(windows):
        means = model.block_mean_losses(x0[:4], window, torch.Generator().manual_seed(7))
        assert variances_from_moments(moments)[k, 0] == pytest.approx(float(means.var()))
    # A block's mean is its summed loss over its L' tokens.
    sums = model.block_losses(torch.ones(2, 16, dtype=torch.float64))
    assert torch.equal(sums, torch.full((2, 4), 4.0, dtype=torch.float64))
    score = model.window_variances(x0, windows, seed=7, batch_rows=4)
    assert torch.allclose(score, variances_from_moments(moments).sum(-1))
    # Two ranks, one row at a time: their moments add up to one process's.
    ranks = [
        window_moments(model, x0, windows, 7, 4, rank=r, world=2, chunk_rows=1) for r in (0, 1)
    ]
    assert torch.allclose(ranks[0] + ranks[1], moments, rtol=1e-10)
