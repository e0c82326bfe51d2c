"""The remasking corrector of the image sampler, one jump per step (docs/method.md §6.2).

Per sub-token, with proposal y_hat, flow-time derivative alpha' and strength kappa, the
jump rates are

    u = A delta_{y_hat} + kappa D,    A = alpha' / (1 - alpha),
    D = B [(1 - alpha) delta_mask + alpha delta_{y_hat}],    B = alpha' / (alpha (1 - alpha)),

with the entry of the current state zeroed. A is the predictor's velocity (mask ->
proposal). D is divergence-free for the masking marginal p_t = alpha delta_{y_hat} +
(1 - alpha) delta_mask: the flux y_hat -> mask, alpha * B (1 - alpha), equals the flux
mask -> y_hat, (1 - alpha) * B alpha, so adding kappa D changes no marginal and only
lets revealed sub-tokens be remasked and drawn again. A value other than y_hat moves to
either at those rates. Over a step of length h a sub-token jumps with probability
1 - exp(-h sum(u)), to Cat(u / sum(u)).

At kappa = 0 the step is the predictor term alone: a sub-token other than y_hat (masked
or revealed) moves to y_hat with probability 1 - exp(-h A), and none is remasked; the
authors' solvers take this step whenever their corrector is on, strength 0 included
(``SamplerConfig.corrector_at_zero``).
"""

from __future__ import annotations

import torch

from ..schedules import Schedule

__all__ = ["corrector_jump"]


def corrector_jump(
    y: torch.Tensor,
    y_hat: torch.Tensor,
    schedule: Schedule,
    t: float,
    h: float,
    kappa: float,
    mask_id: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One remasking/unmasking jump of every sub-token over a step of length h (§6.2);
    y, y_hat: (...) sub-tokens, kappa >= 0."""
    if kappa < 0.0:
        raise ValueError(f"corrector strength kappa must be >= 0, got {kappa}")
    tt = torch.tensor(t, dtype=torch.float64)
    a, da = float(schedule.alpha(tt)), -float(schedule.d_alpha(tt))  # flow-time derivative
    if not 0.0 < a < 1.0:  # the rates are 0/0 at the ends of time
        return y
    to_value = da / (1 - a) + kappa * da / (a * (1 - a)) * a
    to_mask = kappa * da / (a * (1 - a)) * (1 - a)
    masked, agrees = y == mask_id, y == y_hat
    rate_value = torch.where(agrees, 0.0, to_value)
    rate_mask = torch.where(masked, 0.0, to_mask)
    total = rate_value + rate_mask
    u = torch.rand(y.shape, generator=generator, device=y.device, dtype=torch.float64)
    jump = u < 1.0 - torch.exp(-h * total)
    v = torch.rand(y.shape, generator=generator, device=y.device, dtype=torch.float64)
    target = torch.where(v * total < rate_value, y_hat, torch.full_like(y, mask_id))
    return torch.where(jump, target, y)
