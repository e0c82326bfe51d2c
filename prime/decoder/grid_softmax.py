"""The restricted softmax as a differentiable op over the digit grid (docs/method.md §5.2).

Forward: per chunk of rows, P = exp(E - s) in a reused buffer, then the reductions of
:mod:`prime.decoder.digit_grid` (Z, the target's digit marginals S_j(f(x_0)_j), optionally every
S_j); nothing (N, C) is kept. Backward: P is recomputed from the saved logits and the
separable coefficient grid of :mod:`prime.decoder.digit_grid` is multiplied in, one (N, C)
write. The shift s is the row's maximum; rows whose Z underflows (V(y) ~87 nats below
it in float32) are redone with the maximum over V(y).

At ell = 1 the consistent set is every id or one id. On a CPU, where time rather than
memory is the limit, autograd's own log-softmax does that job in fewer passes (about 3x
faster, forward and backward); on accelerators the grid keeps its lean memory (no
float32 (N, C) copy of half-precision logits is kept for the backward pass).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..codec import SubTokenizer
from .digit_grid import (
    Grid,
    chunk_rows_for,
    compute_dtype,
    fill,
    flat_inputs,
    keep_indicators,
    reduce_grid,
    restricted_shift,
    underflowed,
)

__all__ = ["GridSoftmax", "grid_softmax"]


class GridSoftmax(NamedTuple):
    """The restricted softmax of each row: (...,) log Z; with targets x_0, (...,)
    log p(x_0 | y) and (..., ell) log p(y_0^j = f(x_0)_j | y), the marginal of each of
    the target's digits (all the valid bound needs); (..., ell, b) every digit's
    log-marginals if asked for."""

    log_normalizer: torch.Tensor
    token_log_prob: torch.Tensor | None
    log_marginals: torch.Tensor | None
    digit_log_probs: torch.Tensor | None


def _forward(logits, y, digits, codec, marginals, chunk_rows):
    """(shift, Z, S, D) of every row, chunk by chunk: S (N, ell, b) unless not
    ``marginals``, D (N, ell) = S_j at the target ``digits`` unless they are None."""
    grid = Grid(codec)
    n = logits.shape[0]
    dtype = compute_dtype(logits.dtype)
    rows = chunk_rows_for(codec, logits.device, chunk_rows)
    buffer = logits.new_zeros(min(rows, max(n, 1)), grid.width, dtype=dtype)
    shift = logits.amax(-1).to(dtype)
    z = logits.new_empty(n, dtype=dtype)
    s = logits.new_zeros(n, grid.ell, grid.base, dtype=dtype) if marginals else None
    d = logits.new_zeros(n, grid.ell, dtype=dtype) if digits is not None else None

    def run(index: slice | torch.Tensor) -> None:
        chunk = logits[index].to(dtype)
        p = fill(buffer, chunk, shift[index])
        keep = keep_indicators(y[index], codec, dtype)
        target = digits[index] if digits is not None else None
        z[index], s_c, d_c = reduce_grid(p, keep, grid, marginals, target)
        if marginals:
            s[index] = s_c
        if digits is not None:
            d[index] = d_c

    for start in range(0, n, rows):
        run(slice(start, start + rows))
    low = underflowed(z).nonzero().squeeze(-1)
    for start in range(0, low.numel(), rows):
        index = low[start : start + rows]
        shift[index] = restricted_shift(logits[index].to(dtype), y[index], codec, shift[index])
        run(index)
    return shift, z, s, d


def _log_ratio(mass: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log(mass / Z), -inf where the mass is 0."""
    reachable = mass > 0
    return torch.where(reachable, torch.where(reachable, mass, 1.0).log(), float("-inf")) - z.log()


def _consistent(y: torch.Tensor, digits: torch.Tensor, codec: SubTokenizer) -> torch.Tensor:
    """(N,) whether each target token lies in V(y)."""
    return ((y == codec.mask_id) | (y == digits)).all(-1)


def _backward(logits, y, targets, digits, shift, z, s, d, g_z, g_t, g_s, g_d, codec, chunk_rows):
    """dL/dE (N, C) from the upstream gradients (see the module docstring); the target
    digits' terms g_d / S_j(d_j) join h_j at v = d_j."""
    grid = Grid(codec)
    n, c = logits.shape
    dtype = compute_dtype(logits.dtype)
    coef0 = g_z.to(dtype)
    if g_t is not None:
        # A target outside V(y) has log-probability -inf and no gradient.
        g_t = g_t.to(dtype).masked_fill(~_consistent(y, digits, codec), 0.0)
        coef0 = coef0 - g_t
    h = None
    if g_s is not None:
        reachable = s > 0
        g_s = torch.where(reachable, g_s.to(dtype), 0.0)
        h = g_s / torch.where(reachable, s, 1.0)
        coef0 = coef0 - g_s.sum((-1, -2))
    if g_d is not None:
        reachable = d > 0
        g_d = torch.where(reachable, g_d.to(dtype), 0.0)
        h_d = g_d / torch.where(reachable, d, 1.0)
        if h is None:
            h = z.new_zeros(n, grid.ell, grid.base)
        h = h.scatter_add(-1, digits.unsqueeze(-1), h_d.unsqueeze(-1))
        coef0 = coef0 - g_d.sum(-1)
    coef0 = coef0 / z
    grad = torch.empty(n, c, dtype=logits.dtype, device=logits.device)
    rows = chunk_rows_for(codec, logits.device, chunk_rows)
    buffer = logits.new_zeros(min(rows, max(n, 1)), grid.width, dtype=dtype)
    for start in range(0, n, rows):
        index = slice(start, start + rows)
        p = fill(buffer, logits[index].to(dtype), shift[index])
        r = p.shape[0]
        keep = keep_indicators(y[index], codec, dtype)
        k_1 = keep[:, 0, : grid.first]
        h_1 = coef0[index, None] if h is None else h[index, 0, : grid.first] + coef0[index, None]
        if grid.ell == 1:  # the grid is one axis: coef = keep_1 (h_1 + c_0)
            coef = torch.mul(k_1, h_1, out=k_1)
        else:
            h_c = h[index] if h is not None else keep.new_zeros(r, grid.ell, grid.base)
            # W = K_{>j} * sum_{k>j} h_k and K = K_{>j}, from the last axis to axis 2.
            w, k = keep.new_zeros(r, 1), keep.new_ones(r, 1)
            for j in range(grid.ell - 1, 0, -1):
                k_j, h_j = keep[:, j, :, None], h_c[:, j, :, None]
                w = (k_j * (w[:, None, :] + h_j * k[:, None, :])).reshape(r, -1)
                k = (k_j * k[:, None, :]).reshape(r, -1)
            left = torch.stack([k_1, k_1 * h_1], dim=-1)  # (r, n_1, 2)
            coef = torch.bmm(left, torch.stack([w, k], dim=1)).view(r, grid.width)
        if grad.dtype == dtype:
            torch.mul(coef[:, :c], p[:, :c], out=grad[index])
        else:
            grad[index] = coef[:, :c].mul_(p[:, :c])
    if g_t is not None:
        grad.scatter_add_(-1, targets.unsqueeze(-1), g_t.to(grad.dtype).unsqueeze(-1))
    return grad


class _GridSoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, y, targets, digits, codec, marginals, chunk_rows):
        shift, z, s, d = _forward(logits, y, digits, codec, marginals, chunk_rows)
        log_z = (z.log() + shift).to(logits.dtype)
        token = log_s = log_d = None
        if targets is not None:
            # log(P(x_0) / Z) is exactly 0 when x_0 is the only consistent token; the
            # difference of logs serves where the ratio underflows.
            shifted = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1).to(z.dtype) - shift
            ratio = shifted.exp() / z
            tiny = torch.finfo(z.dtype).tiny
            token = torch.where(ratio > tiny, ratio.log(), shifted - z.log())
            token = token.masked_fill(~_consistent(y, digits, codec), float("-inf"))
            token = token.to(logits.dtype)
            log_d = _log_ratio(d, z[:, None]).to(logits.dtype)
        if marginals:
            log_s = _log_ratio(s, z[:, None, None]).to(logits.dtype)
        ctx.save_for_backward(logits, y, targets, digits, shift, z, s, d)
        ctx.codec, ctx.chunk_rows = codec, chunk_rows
        # Unused outputs get None gradients, not (N, ...) zeros to multiply through.
        ctx.set_materialize_grads(False)
        return log_z, token, log_s, log_d

    @staticmethod
    def backward(ctx, g_z, g_t, g_s, g_d):
        logits, y, targets, digits, shift, z, s, d = ctx.saved_tensors
        if g_z is None:
            g_z = torch.zeros_like(z)
        if ctx.codec.ell == 1 and g_d is not None:
            # One digit: its marginal is the token's probability; no (N, C) h is needed.
            g_t = g_d[:, 0] if g_t is None else g_t + g_d[:, 0]
            g_d = None
        grad = _backward(
            logits,
            y,
            targets,
            digits,
            shift,
            z,
            s,
            d,
            g_z,
            g_t,
            g_s,
            g_d,
            ctx.codec,
            ctx.chunk_rows,
        )
        return grad, None, None, None, None, None, None


def _one_digit(logits, y, targets, codec, marginals):
    """The grid op at ell = 1, where V(y) is every id (y masked) or {y}: a log-softmax
    for masked rows and log Z = E(y) for revealed ones, in autograd's own ops (a third
    of the grid's passes over the (N, C) logits)."""
    dtype = logits.dtype
    e = logits.to(compute_dtype(dtype))
    revealed = y != codec.mask_id
    seen = y.clamp(max=codec.num_classes - 1)
    everything = torch.logsumexp(e, -1)
    log_z = torch.where(revealed, e.gather(-1, seen.unsqueeze(-1)).squeeze(-1), everything)
    token = log_d = log_s = None
    if targets is not None:
        free = e.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - everything
        inside = torch.where(targets == seen, 0.0, float("-inf")).to(e.dtype)
        token = torch.where(revealed, inside, free).to(dtype)
        log_d = token.unsqueeze(-1)
    if marginals:
        only = torch.full_like(e, float("-inf")).scatter_(-1, seen.unsqueeze(-1), 0.0)
        log_s = torch.where(revealed.unsqueeze(-1), only, e - everything.unsqueeze(-1))
        log_s = log_s.to(dtype).unsqueeze(1)
    return log_z.to(dtype), token, log_s, log_d


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
        targets: (...,) token ids x_0 whose log p(x_0 | y_t) and digit marginals
            log p(y_0^j = f(x_0)_j | y_t) to return.
        marginals: also return log p(y_0^j = v | y_t) for every v, (..., ell, b); -inf
            for digit values no consistent token has. Costs a second pass over each row.
        carry_over: restrict to V(y_t); without it, a plain softmax over the C ids.
        chunk_rows: rows per chunk (default: a few MiB of grid on the CPU). At ell = 1 on
            a CPU the default takes autograd's log-softmax instead of the grid.

    Equals ``log_softmax`` of the logits with -inf outside V(y_t), and its per-digit
    logsumexp, at about the cost of one ``log_softmax``.
    """
    lead = logits.shape[:-1]
    flat, flat_y = flat_inputs(logits, y_t, codec, carry_over)
    flat_targets = targets.reshape(-1) if targets is not None else None
    if codec.ell == 1 and flat.device.type == "cpu" and chunk_rows is None:
        log_z, token, log_s, log_d = _one_digit(flat, flat_y[:, 0], flat_targets, codec, marginals)
    else:
        digits = codec.encode(flat_targets) if flat_targets is not None else None
        log_z, token, log_s, log_d = _GridSoftmaxFunction.apply(
            flat, flat_y, flat_targets, digits, codec, marginals, chunk_rows
        )
    return GridSoftmax(
        log_normalizer=log_z.view(lead),
        token_log_prob=token.view(lead) if token is not None else None,
        log_marginals=log_s.view(*lead, codec.ell, codec.base) if log_s is not None else None,
        digit_log_probs=log_d.view(*lead, codec.ell) if log_d is not None else None,
    )
