"""Denoiser parameterizations: network logits -> p_theta(x_0 | y_t) (docs/method.md §5).

Joint (token-level) decoders see one logit per token id, E_theta in R^{... x C}:

* with carry-over, the softmax is restricted to the consistent set V(y_t^i)
  (tokens agreeing with every revealed digit of token i):

      p(x | y_t) = exp E(x) / sum_{x' in V} exp E(x')   for x in V, else 0,

  so every revealed digit is reproduced with probability one;
* without carry-over, a plain softmax over the C logits.

The independent decoder has ell softmaxes over b digit values, logits (..., ell, b):
p(y_0^i | y_t) = prod_j p(y_0^{i,j} | y_t); with carry-over a revealed digit is one-hot.

SUBS (MDLM, ell = 1) works on tokens x_t in {0..C-1} U {mask = C}: the mask class gets
probability 0, an unmasked position is one-hot on its observed value. It is the ell = 1
special case of the joint decoder with carry-over (a test checks the two agree).

Sub-token marginals of a joint decoder, used by the valid bound and by per-digit samplers:

    p(y_0^{i,j} = v | y_t) = sum_{x : f(x)_j = v} p(x | y_t).
"""

from __future__ import annotations

import torch

from ..codec import SubTokenizer
from .grid_softmax import grid_softmax

__all__ = [
    "joint_log_probs",
    "independent_log_probs",
    "subs_log_probs",
    "subtoken_log_marginals",
]

_NEG_INF = float("-inf")


def joint_log_probs(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    codec: SubTokenizer,
    *,
    carry_over: bool = True,
    inplace: bool = False,
) -> torch.Tensor:
    """log p_theta(x_0^i = x | y_t) for the joint decoder.

    Args:
        logits: (..., C) network output per token position.
        y_t: (..., ell) noised sub-tokens (mask = ``codec.mask_id``).
        carry_over: restrict the softmax to tokens consistent with the revealed digits.
        inplace: allow overwriting ``logits`` (saves one (..., C) copy).

    Returns:
        (..., C) log-probabilities; -inf outside V(y_t) when ``carry_over``.
    """
    if logits.shape[-1] != codec.num_classes:
        raise ValueError(
            f"joint decoder expects logits (..., C={codec.num_classes}), got {tuple(logits.shape)}"
        )
    if carry_over:
        if not inplace or not logits.is_contiguous():
            logits = logits.clone(memory_format=torch.contiguous_format)
        codec.restrict_logits_(logits, y_t)
    return torch.log_softmax(logits, dim=-1)


def independent_log_probs(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    codec: SubTokenizer,
    *,
    carry_over: bool = True,
) -> torch.Tensor:
    """log p_theta(y_0^{i,j} = v | y_t) for the independent per-digit decoder.

    Args:
        logits: (..., ell, b) one softmax per digit.
        y_t: (..., ell) noised sub-tokens.
        carry_over: revealed digits are one-hot on their observed value.

    Returns:
        (..., ell, b) log-probabilities.
    """
    if logits.shape[-2:] != (codec.ell, codec.base):
        raise ValueError(
            f"independent decoder expects logits (..., ell={codec.ell}, b={codec.base}), "
            f"got {tuple(logits.shape)}"
        )
    log_probs = torch.log_softmax(logits, dim=-1)
    if carry_over:
        revealed = y_t != codec.mask_id
        one_hot = torch.full_like(log_probs, _NEG_INF)
        one_hot.scatter_(-1, y_t.clamp(max=codec.base - 1).unsqueeze(-1), 0.0)
        log_probs = torch.where(revealed.unsqueeze(-1), one_hot, log_probs)
    return log_probs


def subs_log_probs(logits: torch.Tensor, x_t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """MDLM's SUBS parameterization over token ids, mask id ``mask_id``.

    Args:
        logits: (..., C) or (..., C + 1); a mask-class column, if present, is dropped
            (its probability is zero under SUBS).
        x_t: (...,) noised tokens in [0, C] with C = ``mask_id``.

    Returns:
        (..., C) log-probabilities: softmax at masked positions, one-hot (0 / -inf) at
        unmasked positions.
    """
    if logits.shape[-1] == mask_id + 1:
        logits = logits[..., :mask_id]
    elif logits.shape[-1] != mask_id:
        raise ValueError(
            f"SUBS expects logits over C={mask_id} or C+1 classes, got {logits.shape[-1]}"
        )
    log_probs = torch.log_softmax(logits, dim=-1)
    unmasked = x_t != mask_id
    one_hot = torch.full_like(log_probs, _NEG_INF)
    one_hot.scatter_(-1, x_t.clamp(max=mask_id - 1).unsqueeze(-1), 0.0)
    return torch.where(unmasked.unsqueeze(-1), one_hot, log_probs)


def subtoken_log_marginals(log_probs: torch.Tensor, codec: SubTokenizer) -> torch.Tensor:
    """log p(y_0^{i,j} = v | y_t) = logsumexp_{x : f(x)_j = v} log p(x | y_t).

    Args:
        log_probs: (..., C) joint log-probabilities (rows normalised).

    Returns:
        (..., ell, b) log-marginals; -inf for digit values no allowed token has.

    Reductions over the digit grid (:mod:`prime.decoder.digit_grid`); rows are renormalised.
    Each row is shifted by its maximum before exponentiating so that a marginal
    underflows only if every token in its group is ~e^-87 (fp32) below the row's best.
    """
    if log_probs.shape[-1] != codec.num_classes:
        raise ValueError(
            f"expected log-probs (..., C={codec.num_classes}), got {tuple(log_probs.shape)}"
        )
    if codec.ell == 1:
        return log_probs.unsqueeze(-2)
    masked = torch.full((*log_probs.shape[:-1], codec.ell), codec.mask_id, device=log_probs.device)
    return grid_softmax(log_probs, masked, codec, marginals=True).log_marginals
