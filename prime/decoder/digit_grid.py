"""The restricted softmax of a joint decoder as reductions over the digit grid
(docs/method.md §5.2).

Lay the C token ids out as a grid with ell axes, x = (x_1, ..., x_ell), axis 1 of size
n_1 = ceil(C / b**(ell-1)) and every other axis of size b (ids C..G-1 of the last row of
axis 1 are padding, G = n_1 b**(ell-1) < C + b**(ell-1)). The consistent set of a noised
token y is a product set, V(y) = prod_j A_j with A_j = {y_j} if digit j is revealed and
all values otherwise, so with the per-axis indicators keep_j(v) = [v in A_j]:

    Z       = sum_x keep(x) P(x),                 keep(x) = prod_j keep_j(x_j)
    S_j(v)  = keep_j(v) sum_{x : x_j = v} prod_{k != j} keep_k(x_k) P(x)
    log p(x_0 | y)          = E(x_0) - s - log Z
    log p(y_0^j = v | y)    = log S_j(v) - log Z

where P = exp(E - s) with a per-row shift s. Every sum is a contraction of the grid with
per-axis vectors: contracting axis 1 with keep_1 gives the (b**(ell-1),) level of the
remaining axes, and so on. S_j is the level after axes 1..j-1, contracted over axes
j+1..ell with the outer product K_{>j} = keep_{j+1} x ... x keep_ell. The whole set costs
two passes over the C entries of a row (the first level and S_1), the rest is
geometrically smaller. Rows are processed in chunks small enough to stay in cache, so no
(N, C) temporary is written in the forward pass at all.

The gradient of any function of (log Z, log p(x_0 | y), log S) with upstream gradients
(g_Z, g_T, g_S) is separable over the axes:

    dL/dE(x) = keep(x) P(x) (c_0 + sum_j h_j(x_j)) + g_T [x = x_0],
    h_j(v) = g_S[j, v] / S_j(v),   c_0 = (g_Z - g_T - sum g_S) / Z,

and its coefficient grid is built axis by axis from the end, so the backward pass
writes the (N, C) gradient once and reads P (recomputed from the saved logits) once.

The differentiable op is :mod:`prime.decoder.grid_softmax`; draws from the restricted decoder go
down the same grid (:mod:`prime.decoder.grid_draws`).

The shift s is the row's maximum; if the consistent set lies so far below it that Z
underflows, the row is redone with the maximum over V(y) itself.
"""

from __future__ import annotations

import torch

from ..codec import SubTokenizer

__all__ = [
    "Grid",
    "compute_dtype",
    "chunk_rows_for",
    "keep_indicators",
    "trailing_products",
    "fill",
    "contract_trailing",
    "reduce_grid",
    "restricted_shift",
    "underflowed",
    "flat_inputs",
]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the grid is summed in: float32 for half-precision logits."""
    # Half-precision sums over 50k classes lose too much.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def chunk_rows_for(codec: SubTokenizer, device: torch.device, chunk_rows: int | None) -> int:
    """Rows per chunk: ``chunk_rows`` if given, else ~8 MiB of float32 grid on the CPU
    (it stays in cache between the passes) and ~256 MiB on accelerators."""
    if chunk_rows is not None:
        return max(1, chunk_rows)
    if device.type == "cpu":
        return max(1, (1 << 21) // codec.num_classes)
    return max(1, (1 << 26) // codec.num_classes)


class Grid:
    """Grid shape of a codec: axis sizes, the padded width G and level widths X_j."""

    def __init__(self, codec: SubTokenizer):
        b, ell = codec.base, codec.ell
        self.base, self.ell = b, ell
        self.inner = [b ** (ell - 1 - j) for j in range(ell)]  # X_j: entries after axis j
        self.first = -(-codec.num_classes // self.inner[0])  # n_1
        self.width = self.first * self.inner[0]  # G
        self.sizes = [self.first] + [b] * (ell - 1)


def keep_indicators(y: torch.Tensor, codec: SubTokenizer, dtype: torch.dtype) -> torch.Tensor:
    """(r, ell, b) indicators keep_j(v) = [digit j masked or v = y_j]."""
    masked = (y == codec.mask_id).to(dtype).unsqueeze(-1)
    keep = masked.expand(*y.shape, codec.base).contiguous()
    # One write per entry and a scatter: at ell = 1 the rows are C long.
    return keep.scatter_(-1, y.clamp(max=codec.base - 1).unsqueeze(-1), 1.0)


def trailing_products(keep: torch.Tensor, grid: Grid) -> list[torch.Tensor]:
    """K_{>j} for j = 1..ell as (r, X_j) outer products of keep_{j+1..ell}."""
    r = keep.shape[0]
    out = [keep.new_ones(r, 1)]
    for j in range(grid.ell - 1, 0, -1):
        out.append((keep[:, j, :, None] * out[-1][:, None, :]).reshape(r, -1))
    return out[::-1]


def fill(buffer: torch.Tensor, logits: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """P = exp(min(E - s, 0)) into the (r, G) buffer, whose padding columns stay 0."""
    r, c = logits.shape
    body = buffer[:r, :c]
    torch.sub(logits, shift.unsqueeze(-1), out=body)
    # Exact for every consistent token (s is at least their maximum); tokens outside
    # V(y) can lie above a restricted shift and must not overflow to inf * 0.
    body.clamp_(max=0.0).exp_()
    return buffer[:r]


def contract_trailing(level: torch.Tensor, trailing: torch.Tensor) -> torch.Tensor:
    """(r, n) sums of the level (r, n, X) against K (r, X) over its last axis."""
    if level.shape[-1] == 1:  # nothing after this axis (ell = 1, or the last digit): K = 1
        return level.squeeze(-1)
    return torch.bmm(level, trailing.unsqueeze(-1)).squeeze(-1)


def reduce_grid(
    p: torch.Tensor,
    keep: torch.Tensor,
    grid: Grid,
    marginals: bool,
    digits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Z (r,), S (r, ell, b) if ``marginals``, and S_j(d_j) (r, ell) at the ``digits``
    (r, ell) of target tokens, from P (r, G) and keep (r, ell, b).

    A target's S_j(d_j) reads only the row of level j at d_j (X_j entries)."""
    r = p.shape[0]
    level = p.view(r, grid.first, grid.inner[0])
    need_trailing = marginals or digits is not None
    trailing = trailing_products(keep, grid) if need_trailing else None
    s = p.new_zeros(r, grid.ell, grid.base) if marginals else None
    d = p.new_empty(r, grid.ell) if digits is not None else None
    rows = torch.arange(r, device=p.device)
    for j in range(grid.ell):
        n = grid.sizes[j]
        k_j = keep[:, j, :n]
        if marginals:
            s[:, j, :n] = contract_trailing(level, trailing[j]) * k_j
        if digits is not None:
            picked = level[rows, digits[:, j]]  # (r, X_j)
            d[:, j] = (picked * trailing[j]).sum(-1) * keep[rows, j, digits[:, j]]
        if j + 1 < grid.ell:
            level = torch.bmm(k_j.unsqueeze(1), level).view(r, grid.base, grid.inner[j + 1])
    z = (level.squeeze(-1) * keep[:, -1, : grid.sizes[-1]]).sum(-1)
    return z, s, d


def underflowed(total: torch.Tensor) -> torch.Tensor:
    """Which sums of P are too small to trust: V(y) lies ~87 nats (float32) below the
    shift."""
    return total < torch.finfo(total.dtype).tiny / torch.finfo(total.dtype).eps


def restricted_shift(
    logits: torch.Tensor, y: torch.Tensor, codec: SubTokenizer, shift: torch.Tensor
) -> torch.Tensor:
    """(r,) the max of E over V(y) for the rare rows that need it (``shift`` if V(y) is
    empty)."""
    best = logits.masked_fill(~codec.consistent_mask(y), float("-inf")).amax(-1)
    return torch.where(torch.isfinite(best), best, shift)


def flat_inputs(
    logits: torch.Tensor, y_t: torch.Tensor, codec: SubTokenizer, carry_over: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked (N, C) logits and (N, ell) sub-tokens (all masked without carry-over)."""
    if logits.shape[-1] != codec.num_classes:
        raise ValueError(
            f"joint decoder expects logits (..., C={codec.num_classes}), got {tuple(logits.shape)}"
        )
    if y_t.shape[-1] != codec.ell or y_t.shape[:-1] != logits.shape[:-1]:
        raise ValueError(
            f"y_t must be (..., ell={codec.ell}) over the positions of logits "
            f"{tuple(logits.shape[:-1])}, got {tuple(y_t.shape)}"
        )
    flat_y = y_t.reshape(-1, codec.ell)
    if not carry_over:
        flat_y = torch.full_like(flat_y, codec.mask_id)
    return logits.reshape(-1, codec.num_classes), flat_y
