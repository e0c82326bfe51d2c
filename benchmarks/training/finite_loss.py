"""A non-finite training loss stops the run, rather than training on and reporting NaN.

After every optimizer step the step's loss (the mean over the global batch, the value
that is logged) is checked. Without a loss scaler the first NaN or inf stops the run:
its weights, or the optimizer's moments, have left the finite numbers and every later
step inherits that. With the dynamic loss scale of the authors' image code
(``train.loss_scale: dynamic``) a step whose backward overflows is skipped and the run
goes on, as torch's ``GradScaler`` does; a forward that overflows gives a non-finite
loss on such a step, so there a run stops only when :data:`PATIENCE_WITH_SCALER`
steps in a row were non-finite (no weight moves on a skipped step, so that many in a
row means the weights themselves no longer give finite losses).

The last finite loss and its step travel in the checkpoint, so the error of a resumed
run still names them.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["FiniteLossGuard", "NonFiniteLoss", "PATIENCE_WITH_SCALER"]

PATIENCE_WITH_SCALER = 50


class NonFiniteLoss(RuntimeError):
    """The training loss was NaN or inf at ``step``; ``last_finite`` = (step, loss) of
    the last finite one (None if there was none)."""

    def __init__(self, step: int, value: float, last_finite: tuple[int, float] | None):
        self.step, self.value, self.last_finite = step, value, last_finite
        before = (
            f"the last finite loss was {last_finite[1]:.6g} at step {last_finite[0]}"
            if last_finite is not None
            else "no step had a finite loss"
        )
        super().__init__(
            f"training loss is {value} at step {step} ({before}); the run stops and is "
            "marked failed (a smaller train.lr, or train.grad_clip, usually keeps it finite)"
        )

    def tags(self) -> dict[str, str]:
        """What the MLflow run records about the failure."""
        tags = {"primebench.failed_step": str(self.step)}
        if self.last_finite is not None:
            tags["primebench.last_finite_step"] = str(self.last_finite[0])
            tags["primebench.last_finite_loss"] = repr(self.last_finite[1])
        return tags


class FiniteLossGuard:
    """Counts non-finite step losses; ``patience`` of them in a row stop the run
    (1: the first one does)."""

    def __init__(self, patience: int = 1):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.in_a_row = 0
        self.last_finite: tuple[int, float] | None = None

    def check(self, step: int, loss: float) -> bool:
        """Record ``loss`` of optimizer step ``step``; True when the run must stop."""
        if math.isfinite(loss):
            self.in_a_row = 0
            self.last_finite = (step, loss)
            return False
        self.in_a_row += 1
        return self.in_a_row >= self.patience

    def state_dict(self) -> dict[str, Any]:
        last = self.last_finite
        return {
            "in_a_row": self.in_a_row,
            "last_step": last[0] if last else -1,
            "last_loss": last[1] if last else math.nan,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.in_a_row = int(state["in_a_row"])
        step = int(state["last_step"])
        self.last_finite = (step, float(state["last_loss"])) if step >= 0 else None
