"""Per-token losses in nats: the published estimator and the valid bound (docs/method.md §3.3-3.4).

With one time t per sequence and w(t) = -alpha'_t / (1 - alpha_t):

* ``published_joint_loss`` -- the objective as published and trained by MDM-Prime:

      l_pub(i) = w(t) * ( -log p_theta(x_0^i | y_t) ),

  evaluated at every token i with the *joint* token-level probability. Its expectation
  over t and y_t is NOT an upper bound on -log p(x_0) once the decoder is joint over a
  token's ell > 1 digits: on data whose two digits are copies of one uniform value on b
  symbols it equals 0.5 log b, below the entropy log b. The authors withdrew the text
  perplexities computed with it. Use it to reproduce the paper's numbers only.

* ``valid_marginal_bound`` -- the continuous-time NELBO of the reverse kernel that
  factorises over sub-tokens (the corrected evaluation, ``prime.marginalize=True``):

      l_valid(i) = w(t) * sum_{j : y_t^{i,j} = m} ( -log p_theta(y_0^{i,j} | y_t) ),

  with the sub-token marginals of the decoder. E_{t, y_t}[sum_i l_valid(i)] >= -log p(x_0)
  for any model, with equality for the exact posterior. Report it as the likelihood.

For ell = 1 both reduce to the MDLM (SUBS) loss.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .codec import SubTokenizer
from .decoder.grid_softmax import grid_softmax
from .schedules import Schedule

__all__ = [
    "published_joint_loss",
    "valid_marginal_bound",
    "joint_decoder_losses",
    "PrimeLosses",
]


def _weight(t: torch.Tensor, schedule: Schedule, like: torch.Tensor) -> torch.Tensor:
    """w(t) shaped to multiply ``like``: t is (B,) per sequence or (B, L) per token."""
    w = schedule.weight(t.to(torch.float64)).to(like.dtype)
    return w.view(*w.shape, *([1] * (like.dim() - w.dim())))


def published_joint_loss(
    token_log_prob: torch.Tensor, t: torch.Tensor, schedule: Schedule
) -> torch.Tensor:
    """Published MDM-Prime estimator per token (NOT a likelihood bound for ell > 1).

    Args:
        token_log_prob: (B, L) joint log p_theta(x_0^i | y_t) of the clean tokens.
        t: (B,) diffusion times, or (B, L) one per token (block diffusion).
        schedule: gives the weight w(t).

    Returns:
        (B, L) w(t) * -log p_theta(x_0^i | y_t), in nats.
    """
    nll = -token_log_prob
    return _weight(t, schedule, nll) * nll


def valid_marginal_bound(
    digit_log_probs: torch.Tensor,
    y_t: torch.Tensor,
    t: torch.Tensor,
    schedule: Schedule,
    mask_id: int,
) -> torch.Tensor:
    """Valid continuous-time NELBO per token, from sub-token marginals.

    Args:
        digit_log_probs: (B, L, ell) log p_theta(y_0^{i,j} | y_t), each clean digit's
            marginal (``GridSoftmax.digit_log_probs``, or the gathered per-digit
            softmax of the independent decoder).
        y_t: (B, L, ell) noised sub-tokens.
        t: (B,) diffusion times, or (B, L) one per token.
        mask_id: the mask sub-token id m.

    Returns:
        (B, L) w(t) * sum over masked digits of -log p_theta(y_0^{i,j} | y_t), in nats.
    """
    nll = -digit_log_probs
    # Revealed digits contribute exactly 0; where() also drops any -inf*0 from them.
    nll = torch.where(y_t == mask_id, nll, torch.zeros_like(nll)).sum(-1)
    return _weight(t, schedule, nll) * nll


class PrimeLosses(NamedTuple):
    """Both per-token losses (B, L) from one forward pass of a joint decoder."""

    published: torch.Tensor
    valid_bound: torch.Tensor


def joint_decoder_losses(
    logits: torch.Tensor,
    x0: torch.Tensor,
    y_t: torch.Tensor,
    t: torch.Tensor,
    codec: SubTokenizer,
    schedule: Schedule,
    *,
    carry_over: bool = True,
) -> PrimeLosses:
    """Published estimator and valid bound for a joint decoder's logits (B, L, C).

    ``x0`` (B, L) are the clean tokens, ``y_t`` (B, L, ell) the noised sub-tokens. Both come
    from one pass of :func:`prime.grid_softmax` over the logits.
    """
    out = grid_softmax(logits, y_t, codec, targets=x0, carry_over=carry_over)
    published = published_joint_loss(out.token_log_prob, t, schedule)
    valid = valid_marginal_bound(out.digit_log_probs, y_t, t, schedule, codec.mask_id)
    return PrimeLosses(published=published, valid_bound=valid)
