"""Clean proposals of a reverse step: categorical draws from the decoder (docs/method.md §6.1-6.2).

Given the network output at the current y_t, every sampler step draws a complete clean
candidate y_hat (B, L, ell); the sampler then decides which masked sub-tokens take their
candidate value. The draws:

* joint decoder, ``token`` proposal: x^i ~ p(x | y_t) per token (restricted to V(y_t^i)
  with carry-over, optionally top-p filtered), y_hat^i = f(x^i);
* joint decoder, ``subtoken`` proposal: every digit from its marginal
  sum_{x : f(x)_j = v} p(x | y_t);
* independent decoder: every digit from its own softmax.

Without top-p, joint draws go digit by digit down the grid (:mod:`prime.decoder.grid_draws`,
inverse-CDF draws with the cumulative sums in ``sampling_dtype``; no (B, L, C)
probabilities are formed); top-p needs the sorted token distribution. A step changes
only some positions, so ``where`` limits the draws to those.

The other categorical draws use the exponential race argmax_x p(x) / E_x, E_x ~ Exp(1)
(the Gumbel-max trick), with p and E in ``sampling_dtype``: float32 noise truncates the
tail of the Gumbel variable and lowers the effective temperature, float64 avoids that.
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch

from ..codec import SubTokenizer
from ..decoder.grid_draws import grid_sample
from ..decoder.parameterization import (
    independent_log_probs,
    joint_log_probs,
    subtoken_log_marginals,
)

__all__ = ["Proposal", "propose", "sample_categorical", "top_p_filter"]

Proposal = Literal["token", "subtoken"]


def sample_categorical(
    probs: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw per row of ``probs`` (..., K) (unnormalised is fine) via argmax p / Exp(1).

    The exponential noise has the dtype of ``probs``.
    """
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return (probs / noise).argmax(dim=-1)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering over the last dim, MDLM's and BD3-LM's rule: keep the most likely
    classes whose cumulative mass, themselves included, is at most ``top_p`` (and always
    the best one), renormalised. The class whose mass crosses ``top_p`` is dropped."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_p == 1.0:
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    drop = sorted_p.cumsum(dim=-1) > top_p
    drop[..., 0] = False
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    filtered = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return filtered / filtered.sum(dim=-1, keepdim=True)


def propose(
    logits: torch.Tensor,
    y: torch.Tensor,
    codec: SubTokenizer,
    *,
    decoder: Literal["joint", "independent"] = "joint",
    carry_over: bool = True,
    proposal: Proposal = "token",
    top_p: float | None = None,
    sampling_dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    inplace: bool = False,
    where: torch.Tensor | None = None,
) -> torch.Tensor:
    """Clean sub-token proposals (B, L, ell) from decoder logits at the noised ``y``.

    ``logits``: (B, L, C) joint or (B, L, ell, b) independent; ``inplace`` lets the
    top-p path's carry-over restriction overwrite them. ``where`` (B, L) bool: draw
    only at these positions and return ``y`` elsewhere.
    """
    settings = dict(
        decoder=decoder,
        carry_over=carry_over,
        proposal=proposal,
        top_p=top_p,
        sampling_dtype=sampling_dtype,
        generator=generator,
    )
    on_grid = partial(
        grid_sample,
        codec=codec,
        carry_over=carry_over,
        subtoken=proposal == "subtoken",
        sampling_dtype=sampling_dtype,
        generator=generator,
    )
    grid_draw = decoder == "joint" and top_p is None
    if where is not None:
        out = y.clone()
        rows = where.reshape(-1).nonzero().squeeze(-1)
        if not rows.numel():
            return out
        flat_logits, flat_y = logits.flatten(0, where.dim() - 1), y.reshape(-1, codec.ell)
        if grid_draw:
            drawn = on_grid(flat_logits, flat_y, positions=rows)
        else:  # the copy of the rows may be overwritten by the draw
            picked = flat_logits.index_select(0, rows)
            drawn = propose(picked, flat_y[rows], codec, **settings, inplace=True)
        out.view(-1, codec.ell)[rows] = drawn
        return out
    if decoder == "independent":
        log_probs = independent_log_probs(logits, y, codec, carry_over=carry_over)
        return sample_categorical(log_probs.to(sampling_dtype).exp(), generator)
    if grid_draw:
        return on_grid(logits, y)
    log_probs = joint_log_probs(logits, y, codec, carry_over=carry_over, inplace=inplace)
    log_probs = log_probs.to(sampling_dtype)
    probs = top_p_filter(log_probs.exp(), top_p)
    if proposal == "subtoken":
        return sample_categorical(subtoken_log_marginals(probs.log(), codec).exp(), generator)
    return codec.digits[sample_categorical(probs, generator)]
