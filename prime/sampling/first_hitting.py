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
prediction at the current time (:func:`prime.sampling.proposals.propose`).

Times differ between the sequences of a batch, so the denoiser gets t as (B,). Selected
by ``SamplerConfig(first_hitting=True)``; no temperature or corrector applies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..codec import SubTokenizer
from ..schedules import Schedule
from .state import SampleResult

__all__ = ["reveal_one_per_call", "time_of_alpha"]


def time_of_alpha(schedule: Schedule, alpha: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """t in [0, 1] with alpha_t = ``alpha`` (float64 bisection; alpha_t is decreasing)."""
    lo = torch.zeros_like(alpha, dtype=torch.float64)
    hi = torch.ones_like(alpha, dtype=torch.float64)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = schedule.alpha(mid) > alpha
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return 0.5 * (lo + hi)


def reveal_one_per_call(
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    codec: SubTokenizer,
    schedule: Schedule,
    draw: Callable[..., torch.Tensor],
    y: torch.Tensor,
    generator: torch.Generator | None,
) -> SampleResult:
    """Fill every masked sub-token of y (B, L, ell), one per network call; ``draw`` is
    the sampler's proposal (:meth:`prime.Sampler.draw`). ``num_steps`` of the result is
    the number of masked sub-tokens at the start."""
    batch_size = y.shape[0]
    device, mask_id = y.device, codec.mask_id
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
        y_hat = draw(logits, y, None, where, generator)
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
