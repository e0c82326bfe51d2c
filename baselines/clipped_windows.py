"""BD3-LM's data-driven clipped schedule: the candidate windows and how they are scored.

Candidates (kuleshov-group/bd3lms metrics.py:72-86, ``init_valid_vars``): the full window
[eps, 1] first, then for each width w of ``algo.clip_search_widths`` (0.5, 0.6, 0.7, 0.8,
0.9: scripts/train/train_owt_bd3lm.sh:26) every [beta, beta + w] with beta = 0, delta,
2 delta, ... up to 1 - w, delta = ``algo.clip_search_delta`` = 0.05
(configs/algo/bd3lm.yaml:11), a beta of 0 raised to eps: 1 + 11 + 9 + 7 + 5 + 3 = 36.

Score (diffusion.py:414-439 ``validation_step``, :893-913 ``_clipped_schedule_search``):
on each of the first 100 validation batches, every window's per-token weighted loss
(-(1/t) log p(x_0 | x_t) at masked tokens, 0 elsewhere) is averaged within each block;
the unbiased variance of these block means over the whole batch (all devices, all
blocks) is summed over the batches; the least sum wins, the first in candidate order
on a tie (diffusion.py:902 compares with ``<``).

:func:`window_moments` draws each batch's block times stratified over all its rows x
blocks, or over each group of ``strata`` consecutive rows x blocks (bd3lms: each GPU's
validation call of loader.eval_batch_size = 16 rows, diffusion.py:768-789 ``_sample_t``),
and computes the batch's (count, sum, sum of squares) of the block means over the rows
one rank holds, so ranks can add their moments and every rank choose the same window.
Every window sees the same times and masks (one generator seed per batch; bd3lms draws
them afresh per window): the comparison is paired, its target the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from prime import BatchShard

__all__ = [
    "BD3LM_DELTA",
    "BD3LM_WIDTHS",
    "DEFAULT_WINDOWS",
    "clipped_windows",
    "variances_from_moments",
    "window_moments",
]

BD3LM_WIDTHS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
BD3LM_DELTA = 0.05


def clipped_windows(
    widths: Sequence[float] = BD3LM_WIDTHS, delta: float = BD3LM_DELTA
) -> tuple[tuple[float, float], ...]:
    """(0, 1), then [k delta, k delta + w] for each width w and k = 0..(1 - w) / delta, in
    bd3lms's order (a beta of 0 stands for eps: the model raises it to its time_eps)."""
    out = [(0.0, 1.0)]
    for width in widths:
        if not 0.0 < width <= 1.0:
            raise ValueError(f"window widths must be in (0, 1], got {width}")
        for k in range(math.floor((1.0 - width) / delta + 1e-9) + 1):
            beta = round(k * delta, 10)
            out.append((beta, round(beta + width, 10)))
    return tuple(out)


DEFAULT_WINDOWS = clipped_windows()


def _batch_seed(seed: int, batch: int) -> int:
    return (seed + 0x9E3779B97F4A7C15 * batch) % (2**63 - 1)


@torch.no_grad()
def window_moments(
    model: nn.Module,
    rows: torch.Tensor,
    windows: Sequence[tuple[float, float]],
    seed: int,
    batch_rows: int = 0,
    *,
    rank: int = 0,
    world: int = 1,
    chunk_rows: int | None = None,
    device: torch.device | None = None,
    strata: int | None = None,
) -> torch.Tensor:
    """(K, batches, 3) float64: (count, sum, sum of squares) of the per-block mean losses
    (``model.block_mean_losses``) of each window on each batch of ``batch_rows`` rows of
    ``rows`` (N, L) (0: one batch of all N), over the part of every batch this ``rank``
    of ``world`` holds (a contiguous slice), ``chunk_rows`` rows per forward pass; the
    times stratified over each run of ``strata`` rows of a batch (None: the whole batch),
    which must divide every batch's size.

    A row's times and masks depend only on (seed, its batch, its place in the batch):
    the moments added over ranks are those of one process."""
    n = rows.shape[0]
    per_batch = batch_rows or n
    batches = math.ceil(n / per_batch)
    device = device or rows.device
    out = torch.zeros(len(windows), batches, 3, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    for b in range(batches):
        lo = b * per_batch
        size = min(n, lo + per_batch) - lo
        start, stop = lo + size * rank // world, lo + size * (rank + 1) // world
        step = chunk_rows or max(1, stop - start)
        for first in range(start, stop, step):
            last = min(stop, first + step)
            x0 = rows[first:last].to(device).long()
            shard = BatchShard(first - lo, last - first, size, strata)
            for k, window in enumerate(windows):
                gen = torch.Generator(device=device).manual_seed(_batch_seed(seed, b))
                means = model.block_mean_losses(x0, window, gen, shard).double().flatten()
                count = means.new_tensor(means.numel())
                out[k, b] += torch.stack([count, means.sum(), means.square().sum()])
    model.train(was_training)
    return out


def variances_from_moments(moments: torch.Tensor) -> torch.Tensor:
    """(K, batches) unbiased variances from (K, batches, 3) moments."""
    count, total, squares = moments.unbind(-1)
    if bool((count < 2).any()):
        raise ValueError("a batch of the window search has fewer than 2 block losses")
    return (squares - total * total / count) / (count - 1)
