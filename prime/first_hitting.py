"""First-hitting sampler: one sub-token revealed per step, at its exact reveal time.

Under the forward process every masked sub-token of y_t is revealed, going backwards from
t, at an independent time whose survival function is P(still masked at s) =
(1 - alpha_s) / (1 - alpha_t). With n sub-tokens masked at t, the first of them to be
revealed is uniform among the n, at the time s solving

    1 - alpha_s = (1 - alpha_t) * r ** (1 / n),   r ~ U(0, 1)

(the maximum of n such reveal times). Jumping from one hitting time to the next reveals
exactly one sub-token per network call: no step is idle, and NFE = the number of masked
sub-tokens at the start (Zheng et al., 2024; the block-diffusion sampler's option). The
revealed value is the chosen sub-token's entry of a clean proposal drawn from the
prediction at the current time (:func:`prime.proposals.propose`).

Times differ between the sequences of a batch, so the denoiser gets t as (B,).
"""

from __future__ import annotations

from typing import Literal

import torch

from .codec import SubTokenizer
from .proposals import Proposal, propose
from .sampler import Denoiser, SampleResult, initial_state
from .schedules import Schedule, get_schedule

__all__ = ["sample_first_hitting", "time_of_alpha"]


def time_of_alpha(schedule: Schedule, alpha: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """t in [0, 1] with alpha_t = ``alpha`` (float64 bisection; alpha_t is decreasing)."""
    lo = torch.zeros_like(alpha, dtype=torch.float64)
    hi = torch.ones_like(alpha, dtype=torch.float64)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = schedule.alpha(mid) > alpha
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return 0.5 * (lo + hi)


@torch.no_grad()
def sample_first_hitting(
    denoiser: Denoiser,
    codec: SubTokenizer,
    *,
    batch_size: int,
    seq_len: int,
    schedule: str | Schedule = "linear",
    decoder: Literal["joint", "independent"] = "joint",
    carry_over: bool = True,
    proposal: Proposal = "token",
    top_p: float | None = None,
    sampling_dtype: torch.dtype = torch.float64,
    prefix: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> SampleResult:
    """Draw ``batch_size`` sequences of ``seq_len`` tokens, one sub-token per step.

    Arguments as in :func:`prime.sample`; there is no grid (the times are drawn), so
    ``num_steps`` of the result is the number of masked sub-tokens at the start.
    """
    y = initial_state(
        codec, batch_size, seq_len, decoder, proposal, top_p, sampling_dtype, prefix, device
    )
    device, mask_id = y.device, codec.mask_id
    schedule = get_schedule(schedule)
    masked_units = int((y[0] == mask_id).sum())
    t = torch.ones(batch_size, dtype=torch.float64, device=device)
    rows = torch.arange(batch_size, device=device)
    for k in range(masked_units):
        logits = denoiser(y, t.float())
        # Uniform choice among the masked sub-tokens: the largest of uniform scores.
        flat_y = y.view(batch_size, -1)
        score = torch.rand(flat_y.shape, generator=generator, device=device, dtype=torch.float64)
        pick = score.masked_fill(flat_y != mask_id, -1.0).argmax(dim=1)
        where = torch.zeros(y.shape[:2], dtype=torch.bool, device=device)
        where[rows, pick // codec.ell] = True
        y_hat = propose(
            logits,
            y,
            codec,
            decoder=decoder,
            carry_over=carry_over,
            proposal=proposal,
            top_p=top_p,
            sampling_dtype=sampling_dtype,
            generator=generator,
            where=where,
        )
        flat_y[rows, pick] = y_hat.view(batch_size, -1)[rows, pick]
        remaining = masked_units - k
        r = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
        masked_mass = (1.0 - schedule.alpha(t)) * r ** (1.0 / remaining)
        t = time_of_alpha(schedule, 1.0 - masked_mass)
    return SampleResult(
        tokens=codec.decode(y),
        subtokens=y,
        idle_steps=torch.zeros(batch_size, dtype=torch.long, device=device),
        batch_idle_steps=0,
        nfe=masked_units,
        num_steps=masked_units,
        num_classes=codec.num_classes,
    )
