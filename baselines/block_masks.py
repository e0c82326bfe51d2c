"""BD3-LM's mask-rate resampling: every block's realised masked fraction inside the window.

With a clipped window [beta, omega] the time t_b of block b lies in the window, but the
fraction of the block that its Bernoulli(p_b) draws mask (p_b = 1 - alpha(t_b)) need not.
BD3-LM (``training.resample``) redraws the whole mask of every block whose masked
fraction k / n (k masked of its n sub-tokens) lies outside [beta, omega], again and
again, until it lies inside; a bound at the edge of the full window is not enforced
(beta = eps: a block may stay clean; omega = 1: nothing to enforce). A block's mask is
then its first acceptable draw of n independent Bernoulli(p_b) sub-tokens, so its law is

    P(m) = p^|m| (1 - p)^(n - |m|) [k_lo <= |m| <= k_hi] / Z,
    k_lo = ceil(beta n) (0 at the eps edge),  k_hi = floor(omega n) (n at omega = 1):

the count k is binomial(n, p) truncated to [k_lo, k_hi], and given k the masked
positions are a uniform k-subset of the block. :func:`mask_blocks_in_window` draws that
law directly: k by inverting the truncated binomial CDF at one uniform per block, the
positions as the k smallest of one uniform per sub-token. Unlike a redraw loop it takes a
fixed number of random numbers, so (as :func:`prime.mask_subtokens`) a row's mask
depends on its place in the global batch only, not on how the batch is split.
"""

from __future__ import annotations

import math

import torch

from prime import BatchShard

__all__ = ["count_bounds", "mask_blocks_in_window"]

# k / n is compared with the window's ends inclusively; the slack absorbs the rounding of
# products such as 20 * 0.55 = 11.000000000000002.
_SLACK = 1e-9


def count_bounds(
    sizes: torch.Tensor, window: tuple[float, float], low: bool, high: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(k_lo, k_hi) per block of ``sizes`` (n sub-tokens each): the masked counts with
    beta <= k / n <= omega, an end not enforced when ``low`` / ``high`` is false."""
    beta, omega = window
    k_lo = torch.ceil(sizes * beta - _SLACK).long() if low else torch.zeros_like(sizes)
    k_hi = torch.floor(sizes * omega + _SLACK).long() if high else sizes.clone()
    if bool((k_lo > k_hi).any()):
        bad = int(sizes[k_lo > k_hi][0])
        raise ValueError(
            f"no masked fraction k/{bad} of a block of {bad} sub-tokens lies in the window "
            f"[{beta}, {omega}]: resampling cannot satisfy it"
        )
    return k_lo, k_hi


def _uniform(shape: tuple[int, ...], shard: BatchShard | None, gen, device) -> torch.Tensor:
    """U(0, 1) float64, drawn for the whole global batch and cut to ``shard``'s rows."""
    if shard is None:
        return torch.rand(shape, generator=gen, device=device, dtype=torch.float64)
    full = torch.rand((shard.total, *shape[1:]), generator=gen, device=device, dtype=torch.float64)
    return full[shard.start : shard.start + shard.size]


def mask_blocks_in_window(
    y0: torch.Tensor,
    mask_prob: torch.Tensor,
    block_size: int,
    window: tuple[float, float],
    mask_id: int,
    *,
    low: bool,
    high: bool,
    generator: torch.Generator | None = None,
    shard: BatchShard | None = None,
) -> torch.Tensor:
    """y_t (B, L, ell): each block's mask drawn from the resampled law above.

    Args:
        y0: (B, L, ell) clean sub-tokens; blocks are ``block_size`` tokens (the last one
            shorter when block_size does not divide L), n = tokens x ell sub-tokens.
        mask_prob: (B, blocks) p_b, the probability that one sub-token is masked.
        window: (beta, omega); ``low`` / ``high``: whether beta / omega is enforced.
        shard: ``y0`` holds these rows of a larger global batch.
    """
    batch, seq_len, ell = y0.shape
    blocks = math.ceil(seq_len / block_size)
    if mask_prob.shape != (batch, blocks):
        raise ValueError(
            f"mask_prob must be (B, blocks) = {(batch, blocks)}, got {tuple(mask_prob.shape)}"
        )
    width = block_size * ell
    pad = blocks * block_size - seq_len
    sizes = torch.full((blocks,), width, dtype=torch.long, device=y0.device)
    sizes[-1] = (block_size - pad) * ell
    k_lo, k_hi = count_bounds(sizes, window, low, high)

    # The truncated binomial pmf over k = 0..width, per block (log-space, float64).
    k = torch.arange(width + 1, device=y0.device, dtype=torch.float64)
    n = sizes.double()[:, None]
    log_choose = torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma((n - k).clamp(min=0) + 1)
    p = mask_prob.double().clamp(1e-300, 1.0)[..., None]
    log_pmf = log_choose + torch.xlogy(k, p) + torch.xlogy(n - k, (1.0 - p).clamp(min=0.0))
    allowed = (k >= k_lo[:, None]) & (k <= k_hi[:, None])
    log_pmf = log_pmf.masked_fill(~allowed, -math.inf)
    cdf = torch.softmax(log_pmf, dim=-1).cumsum(-1)
    u_count = _uniform((batch, blocks), shard, generator, y0.device)
    count = (cdf < u_count[..., None]).sum(-1)
    count = torch.maximum(torch.minimum(count, k_hi), k_lo)  # rounding at the CDF's top

    # A uniform k-subset: the k smallest of iid uniforms (padding never chosen).
    u_pos = _uniform((batch, seq_len, ell), shard, generator, y0.device)
    u_pos = torch.nn.functional.pad(u_pos, (0, 0, 0, pad), value=math.inf)
    u_pos = u_pos.reshape(batch, blocks, width)
    rank = u_pos.argsort(-1).argsort(-1)
    masked = (rank < count[..., None]).reshape(batch, blocks * block_size, ell)[:, :seq_len]
    return torch.where(masked, torch.full_like(y0, mask_id), y0)
