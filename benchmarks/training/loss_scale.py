"""Dynamic loss scaling with the law of torch's ``GradScaler``, for any training precision.

State: a float32 scale S (2^16 at the start) and the count c of clean steps since S last
changed. Each optimizer step:

* every micro-batch's backward runs on S * loss, so each gradient (and each value inside
  the backward) comes out multiplied by S;
* before the step, after the data-parallel all-reduce, every gradient is multiplied by
  1/S; if one of the scaled gradients held an inf or NaN, the step is skipped (no weight
  moves and AdamW does not count the step), S <- S / 2 and c <- 0;
* else the step is taken and c <- c + 1; at c = growth_interval (2000), S <- 2 S unless
  that is not finite in float32, and c <- 0.

S is a power of two, so in float32 S g and then (S g) / S are exact while nothing
overflows or underflows: unscaled, the gradients are those of the plain backward, except
where a backward value falls below 2^-126 without the factor S (a subnormal keeps fewer
bits, below 2^-149 it is 0) and not with it. The loss is scaled for real (not only S g
checked for overflow) so that such small values come out as the scaled run gives them.

In float32 (or bf16, whose exponent range is float32's) nothing overflows at S = 2^16: S
doubles every 2000 steps until S m reaches 2^128, m the largest magnitude of the backward
(a gradient or an intermediate value), after about 2000 log2(2^112 / m) steps; from then
on about one step in growth_interval + 1 overflows and is skipped. S stops at 2^127, the
largest float32 power of two (a doubling to inf is not taken), so with m < 2 it saturates
there (after 222,000 steps) and skips only a step whose m reaches 2. A skipped step still
counts as a step: the data, the learning-rate schedule and the EMA update move on.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

__all__ = ["DynamicLossScale", "LossScaledModule"]


class DynamicLossScale(nn.Module):
    """S and c (see the module docstring) as buffers, so that they travel with the module's
    ``state_dict`` and a resumed run continues the same sequence; ``skipped`` counts the
    skipped steps. The defaults are torch's ``GradScaler`` ones."""

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_interval: int = 2000,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
    ):
        super().__init__()
        if not (init_scale > 0 and growth_factor > 1 and 0 < backoff_factor < 1):
            raise ValueError(
                "loss scale: expected init_scale > 0, growth_factor > 1 and backoff_factor "
                f"in (0, 1), got {init_scale}, {growth_factor}, {backoff_factor}"
            )
        if type(growth_interval) is not int or growth_interval < 1:
            raise ValueError(f"loss scale: growth_interval must be >= 1, got {growth_interval}")
        self.growth_interval = growth_interval
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.register_buffer("scale", torch.tensor(init_scale, dtype=torch.float32))
        self.register_buffer("clean_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long))

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """S * loss, whose backward leaves S times each gradient."""
        return loss * self.scale.to(loss.device)

    def _times(self, factor: float) -> torch.Tensor:
        # As GradScaler: the product in double, stored as float32.
        return (self.scale.double() * factor).float()

    @torch.no_grad()
    def unscale_or_skip(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale the gradients of ``optimizer``'s parameters and update S and c; on an
        inf or NaN, drop every gradient (the optimizer then moves no weight and counts no
        step, as GradScaler.step not calling it) and return True (skipped)."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        finite = not grads or bool(torch.stack([g.isfinite().all() for g in grads]).all())
        inverse = self.scale.double().reciprocal().float()
        for grad in grads:
            grad.mul_(inverse.to(grad.device))
        if not finite:
            for p in params:
                p.grad = None
            self.scale.copy_(self._times(self.backoff_factor))
            self.clean_steps.zero_()
            self.skipped += 1
            return True
        self.clean_steps += 1
        if int(self.clean_steps) == self.growth_interval:
            grown = self._times(self.growth_factor)
            if torch.isfinite(grown):
                self.scale.copy_(grown)
            self.clean_steps.zero_()
        return False

    def metrics(self) -> dict[str, float]:
        """S after this step's update, and the steps skipped so far."""
        return {"train/loss_scale": float(self.scale), "train/skipped_steps": float(self.skipped)}


class LossScaledModule(L.LightningModule):
    """A LightningModule whose training follows ``self.loss_scale``, a
    :class:`DynamicLossScale` or None (plain backward and step); a subclass sets it in its
    ``__init__``. Works with automatic optimisation, gradient accumulation and DDP."""

    loss_scale: DynamicLossScale | None

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        # Lightning has already divided the loss by the micro-batches of a step: S (L / k),
        # the order of the authors' loop.
        scaled = loss if self.loss_scale is None else self.loss_scale.scale_loss(loss)
        super().backward(scaled, *args, **kwargs)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # After the last micro-batch's backward, whose gradients DDP has all-reduced, and
        # before clipping and the step: every rank holds the same gradients, hence takes
        # the same decision.
        if self.loss_scale is not None:
            self.loss_scale.unscale_or_skip(optimizer)
            self.log_dict(self.loss_scale.metrics())
