"""Draws from a restricted joint decoder down the digit grid (docs/method.md §6.1-6.2).

With the grid, indicators and levels of :mod:`prime.decoder.digit_grid`, a token draw
x ~ p(x | y) is ell small categorical draws: digit 1 from S_1 (one pass over the row),
then digit j from the level fixed by the digits drawn before it, contracted with
K_{>j}, which touches about C / n_1 entries. A sub-token draw takes every digit from its
marginal S_j instead. No (N, C) probabilities or noise are formed: each categorical
draw is a uniform through the cumulative weights (inverse CDF).
"""

from __future__ import annotations

import math

import torch

from ..codec import SubTokenizer
from .digit_grid import (
    Grid,
    chunk_rows_for,
    compute_dtype,
    contract_trailing,
    fill,
    flat_inputs,
    keep_indicators,
    reduce_grid,
    restricted_shift,
    trailing_products,
    underflowed,
)

__all__ = ["grid_sample"]


def _inverse_cdf(weights: torch.Tensor, dtype: torch.dtype, generator) -> torch.Tensor:
    """The first i with cumsum(w)_i > u * sum(w), u ~ U[0, 1), per row of (r, n)."""
    cdf = weights.to(dtype).cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=dtype)
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return index.squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


def _draw(weights: torch.Tensor, dtype: torch.dtype, generator) -> torch.Tensor:
    """One index per row of the (r, n) unnormalised ``weights``, exactly.

    Short rows: inverse CDF with the cumulative sums in ``dtype``. Long rows (ell = 1, where
    a row is the C token weights): a block of ~sqrt(n) entries from the block sums, then an
    entry within it, so only two short cumulative sums are formed in ``dtype``."""
    r, n = weights.shape
    if n <= 4096:
        return _inverse_cdf(weights, dtype, generator)
    size = math.isqrt(n - 1) + 1
    blocks = -(-n // size)
    padded = torch.nn.functional.pad(weights, (0, blocks * size - n)).view(r, blocks, size)
    block = _inverse_cdf(padded.sum(-1), dtype, generator)
    within = padded[torch.arange(r, device=weights.device), block]
    return block * size + _inverse_cdf(within, dtype, generator)


@torch.no_grad()
def grid_sample(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    codec: SubTokenizer,
    *,
    carry_over: bool = True,
    subtoken: bool = False,
    sampling_dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    chunk_rows: int | None = None,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Digits (..., ell) of a draw from the restricted joint decoder at each position,
    or (P, ell) at the flat ``positions`` (P,) only (read chunk by chunk, never copied
    out as a whole).

    ``subtoken=False``: x ~ p(x | y_t), digit by digit down the grid (each digit from its
    conditional given the digits drawn before it), returned as f(x). ``subtoken=True``:
    every digit independently from its marginal p(y_0^j | y_t). The categorical draws
    use ``sampling_dtype`` weights and noise; the grid sums use the logits' precision.
    """
    lead = logits.shape[:-1]
    flat, flat_y = flat_inputs(logits, y_t, codec, carry_over)
    grid = Grid(codec)
    n = flat.shape[0] if positions is None else positions.numel()
    dtype = compute_dtype(flat.dtype)
    rows = chunk_rows_for(codec, flat.device, chunk_rows)
    buffer = flat.new_zeros(min(rows, max(n, 1)), grid.width, dtype=dtype)
    out = torch.empty(n, grid.ell, dtype=torch.long, device=flat.device)
    for start in range(0, n, rows):
        index = slice(start, start + rows)
        if positions is None:
            chunk, y = flat[index].to(dtype), flat_y[index]
        else:
            chunk = flat.index_select(0, positions[index]).to(dtype)
            y = flat_y.index_select(0, positions[index])
        r = chunk.shape[0]
        keep = keep_indicators(y, codec, dtype)
        trailing = trailing_products(keep, grid)
        shift = chunk.amax(-1)
        for attempt in range(2):
            p = fill(buffer, chunk, shift)
            if subtoken:
                _, first, _ = reduce_grid(p, keep, grid, marginals=True)
            else:
                level = p.view(r, grid.first, grid.inner[0])
                first = contract_trailing(level, trailing[0]) * keep[:, 0, : grid.first]
            total = first[:, 0].sum(-1) if subtoken else first.sum(-1)
            low = underflowed(total)
            if attempt or not bool(low.any()):
                break
            shift[low] = restricted_shift(chunk[low], y[low], codec, shift[low])
        if subtoken:
            out[index] = _draw(first.flatten(0, 1), sampling_dtype, generator).view(r, grid.ell)
            continue
        for j in range(grid.ell):
            weights = contract_trailing(level, trailing[j]) * keep[:, j] if j else first
            digit = _draw(weights, sampling_dtype, generator)
            out[index, j] = digit
            if j + 1 < grid.ell:
                picked = level[torch.arange(r, device=level.device), digit]
                level = picked.view(r, grid.base, grid.inner[j + 1])
    return out.view(*lead, grid.ell) if positions is None else out
