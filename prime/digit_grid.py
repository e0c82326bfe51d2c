"""The restricted softmax of a joint decoder as reductions over the digit grid (PRIME_SPEC §5.2).

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

Draws from the restricted decoder go down the same grid (:mod:`prime.grid_draws`).

The shift s is the row's maximum; if the consistent set lies so far below it that Z
underflows, the row is redone with the maximum over V(y) itself.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .codec import SubTokenizer

__all__ = ["GridSoftmax", "grid_softmax"]


class GridSoftmax(NamedTuple):
    """The restricted softmax of each row: (...,) log Z, (...,) log p(x_0 | y) (None
    without targets), (..., ell, b) digit log-marginals (None unless asked for)."""

    log_normalizer: torch.Tensor
    token_log_prob: torch.Tensor | None
    log_marginals: torch.Tensor | None


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
        self.base, self.ell, self.classes = b, ell, codec.num_classes
        self.inner = [b ** (ell - 1 - j) for j in range(ell)]  # X_j: entries after axis j
        self.first = -(-codec.num_classes // self.inner[0])  # n_1
        self.width = self.first * self.inner[0]  # G
        self.sizes = [self.first] + [b] * (ell - 1)


def keep_indicators(y: torch.Tensor, codec: SubTokenizer, dtype: torch.dtype) -> torch.Tensor:
    """(r, ell, b) indicators keep_j(v) = [digit j masked or v = y_j]."""
    values = torch.arange(codec.base, device=y.device)
    masked = (y == codec.mask_id).unsqueeze(-1)
    return (masked | (values == y.unsqueeze(-1))).to(dtype)


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


def reduce_grid(
    p: torch.Tensor, keep: torch.Tensor, grid: Grid, marginals: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Z (r,) and, if asked, S (r, ell, b) from P (r, G) and keep (r, ell, b)."""
    r = p.shape[0]
    level = p.view(r, grid.first, grid.inner[0])
    trailing = trailing_products(keep, grid) if marginals else None
    s = p.new_zeros(r, grid.ell, grid.base) if marginals else None
    for j in range(grid.ell):
        n = grid.sizes[j]
        k_j = keep[:, j, :n]
        if marginals:
            if grid.inner[j] == 1:
                s[:, j, :n] = level.squeeze(-1) * k_j
            else:
                s[:, j, :n] = torch.bmm(level, trailing[j].unsqueeze(-1)).squeeze(-1) * k_j
        if j + 1 < grid.ell:
            level = torch.bmm(k_j.unsqueeze(1), level).view(r, grid.base, grid.inner[j + 1])
    z = (level.squeeze(-1) * keep[:, -1, : grid.sizes[-1]]).sum(-1)
    return z, s


def restricted_max(logits: torch.Tensor, y: torch.Tensor, codec: SubTokenizer) -> torch.Tensor:
    """(r,) max of E over V(y) (-inf if empty); for the rare rows that need it."""
    allowed = codec.consistent_mask(y)
    return logits.masked_fill(~allowed, float("-inf")).amax(-1)


def _forward(logits, y, codec, marginals, chunk_rows):
    """(shift, Z, S) of every row, chunk by chunk; S is None unless ``marginals``."""
    grid = Grid(codec)
    n = logits.shape[0]
    dtype = compute_dtype(logits.dtype)
    rows = chunk_rows_for(codec, logits.device, chunk_rows)
    buffer = logits.new_zeros(min(rows, max(n, 1)), grid.width, dtype=dtype)
    shift = logits.amax(-1).to(dtype)
    z = logits.new_empty(n, dtype=dtype)
    s = logits.new_zeros(n, grid.ell, grid.base, dtype=dtype) if marginals else None

    def run(index: slice | torch.Tensor) -> None:
        chunk = logits[index].to(dtype)
        p = fill(buffer, chunk, shift[index])
        z_c, s_c = reduce_grid(p, keep_indicators(y[index], codec, dtype), grid, marginals)
        z[index] = z_c
        if marginals:
            s[index] = s_c

    for start in range(0, n, rows):
        run(slice(start, start + rows))
    # Z underflows only if V(y) lies ~87 nats (float32) below the row's maximum.
    low = (z < torch.finfo(dtype).tiny / torch.finfo(dtype).eps).nonzero().squeeze(-1)
    if low.numel():
        for start in range(0, low.numel(), rows):
            index = low[start : start + rows]
            best = restricted_max(logits[index].to(dtype), y[index], codec)
            shift[index] = torch.where(torch.isfinite(best), best, shift[index])
            run(index)
    return shift, z, s


def _backward(logits, y, targets, shift, z, s, g_z, g_t, g_s, codec, chunk_rows):
    """dL/dE (N, C) from the upstream gradients (see the module docstring)."""
    grid = Grid(codec)
    n, c = logits.shape
    dtype = compute_dtype(logits.dtype)
    coef0 = g_z.to(dtype)
    if g_t is not None:
        coef0 = coef0 - g_t.to(dtype)
    h = None
    if g_s is not None:
        reachable = s > 0
        g_s = torch.where(reachable, g_s.to(dtype), 0.0)
        h = g_s / torch.where(reachable, s, 1.0)
        coef0 = coef0 - g_s.sum((-1, -2))
    coef0 = coef0 / z
    grad = torch.empty(n, c, dtype=logits.dtype, device=logits.device)
    rows = chunk_rows_for(codec, logits.device, chunk_rows)
    buffer = logits.new_zeros(min(rows, max(n, 1)), grid.width, dtype=dtype)
    for start in range(0, n, rows):
        index = slice(start, start + rows)
        p = fill(buffer, logits[index].to(dtype), shift[index])
        r = p.shape[0]
        keep = keep_indicators(y[index], codec, dtype)
        h_c = h[index] if h is not None else keep.new_zeros(r, grid.ell, grid.base)
        # W = K_{>j} * sum_{k>j} h_k and K = K_{>j}, from the last axis to axis 2.
        w, k = keep.new_zeros(r, 1), keep.new_ones(r, 1)
        for j in range(grid.ell - 1, 0, -1):
            k_j, h_j = keep[:, j, :, None], h_c[:, j, :, None]
            w = (k_j * (w[:, None, :] + h_j * k[:, None, :])).reshape(r, -1)
            k = (k_j * k[:, None, :]).reshape(r, -1)
        k_1 = keep[:, 0, : grid.first]
        h_1 = h_c[:, 0, : grid.first] + coef0[index, None]
        left = torch.stack([k_1, k_1 * h_1], dim=-1)  # (r, n_1, 2)
        coef = torch.bmm(left, torch.stack([w, k], dim=1)).view(r, grid.width)
        coef = coef[:, :c].mul_(p[:, :c])
        grad[index] = coef
    if g_t is not None:
        grad.scatter_add_(-1, targets.unsqueeze(-1), g_t.to(grad.dtype).unsqueeze(-1))
    return grad


class _GridSoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, y, targets, codec, marginals, chunk_rows):
        shift, z, s = _forward(logits, y, codec, marginals, chunk_rows)
        log_z = (z.log() + shift).to(logits.dtype)
        token = None
        if targets is not None:
            # log(P(x_0) / Z) is exactly 0 when x_0 is the only consistent token; the
            # difference of logs serves where the ratio underflows.
            shifted = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).to(z.dtype) - shift
            ratio = shifted.exp() / z
            tiny = torch.finfo(z.dtype).tiny
            token = torch.where(ratio > tiny, ratio.log(), shifted - z.log())
            token = token.to(logits.dtype)
        log_s = None
        if marginals:
            reachable = s > 0
            log_s = torch.where(reachable, torch.where(reachable, s, 1.0).log(), float("-inf"))
            log_s = (log_s - z.log()[:, None, None]).to(logits.dtype)
        ctx.save_for_backward(logits, y, targets, shift, z, s)
        ctx.codec, ctx.chunk_rows = codec, chunk_rows
        return log_z, token, log_s

    @staticmethod
    def backward(ctx, g_z, g_t, g_s):
        logits, y, targets, shift, z, s = ctx.saved_tensors
        if g_z is None:
            g_z = torch.zeros_like(z)
        grad = _backward(logits, y, targets, shift, z, s, g_z, g_t, g_s, ctx.codec, ctx.chunk_rows)
        return grad, None, None, None, None, None


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


def grid_softmax(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    codec: SubTokenizer,
    *,
    targets: torch.Tensor | None = None,
    marginals: bool = False,
    carry_over: bool = True,
    chunk_rows: int | None = None,
) -> GridSoftmax:
    """Restricted normaliser, token log-probability and digit marginals, differentiable.

    Args:
        logits: (..., C) joint decoder logits E.
        y_t: (..., ell) noised sub-tokens (mask = ``codec.mask_id``).
        targets: (...,) token ids x_0 whose log p(x_0 | y_t) to return.
        marginals: also return log p(y_0^j = v | y_t), (..., ell, b); -inf for digit
            values no consistent token has.
        carry_over: restrict to V(y_t); without it, a plain softmax over the C ids.
        chunk_rows: rows per chunk (default: a few MiB of grid on the CPU).

    Equals ``log_softmax`` of the logits with -inf outside V(y_t), and its per-digit
    logsumexp, at about the cost of one ``log_softmax``.
    """
    lead = logits.shape[:-1]
    flat, flat_y = flat_inputs(logits, y_t, codec, carry_over)
    flat_targets = targets.reshape(-1) if targets is not None else None
    log_z, token, log_s = _GridSoftmaxFunction.apply(
        flat, flat_y, flat_targets, codec, marginals, chunk_rows
    )
    return GridSoftmax(
        log_normalizer=log_z.view(lead),
        token_log_prob=token.view(lead) if token is not None else None,
        log_marginals=log_s.view(*lead, codec.ell, codec.base) if log_s is not None else None,
    )
