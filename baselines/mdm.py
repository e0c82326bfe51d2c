"""Masked diffusion (MDM / MDLM) as the ell = 1 case of MDM-Prime.

With one sub-token per token the base is b = C, the mask sub-token id b is MDLM's mask
token C, the joint decoder with carry-over is MDLM's SUBS parameterization, and the
published estimator and the valid bound are the same continuous-time NELBO. So MDM is
not re-implemented: it is ``prime.MaskedDiffusion`` with ``SubTokenizer(C, 1)``.
"""

from __future__ import annotations

from torch import nn

from prime import MaskedDiffusion, Schedule, SubTokenizer

__all__ = ["build_mdm"]


def build_mdm(
    network: nn.Module,
    num_classes: int,
    schedule: str | Schedule = "loglinear",
    *,
    time_eps: float = 1e-3,
    train_time_eps: float | None = None,
    objective: str = "valid",
    masking: str = "independent",
) -> MaskedDiffusion:
    """MDLM / MDM: a masked diffusion model over C classes with the SUBS decoder.

    ``network`` maps (x_t as (B, L, 1) token ids with mask id C, t (B,)) to (B, L, C),
    or (B, L, C + 1) for "cross_entropy_257". ``objective``: "valid" (the NELBO, = the
    published loss for ell = 1), "cross_entropy" (the image models' unweighted loss) or
    "cross_entropy_257" (that loss over C + 1 outputs, the mask class too: the authors'
    image MDM; :mod:`prime.mask_class`). ``masking``: how training draws
    x_t; ``time_eps`` / ``train_time_eps``: the times' window (:class:`prime.MaskedDiffusion`).
    """
    return MaskedDiffusion(
        network,
        SubTokenizer(num_classes, 1),
        schedule,
        decoder="joint",
        carry_over=True,
        objective=objective,
        time_eps=time_eps,
        train_time_eps=train_time_eps,
        masking=masking,
    )
