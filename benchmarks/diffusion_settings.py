"""Settings shared by the masked-diffusion model entries (prime, mdm, mdm-mixture): the
schedule and masking names, and the check of the training times' lower end.

Training draws t in [train_time_eps, 1). An objective weighted by w(t) = -alpha'_t /
(1 - alpha_t) (published, valid) needs train_time_eps > 0: w is infinite at t = 0, where
nothing is masked (0 * inf), and the loss has unbounded variance near it. The unweighted
cross-entropy objectives are finite at every t, t = 0 included, so they may draw from
the whole of [0, 1), as the authors' image training does (s ~ U(0, 1)).
"""

from __future__ import annotations

from typing import Literal

from .core import ConfigError

__all__ = ["ScheduleName", "MaskingName", "WEIGHTED_OBJECTIVES", "check_train_time_eps"]

ScheduleName = Literal["linear", "loglinear", "polynomial", "cosine"]
MaskingName = Literal["independent", "at_least_one"]
WEIGHTED_OBJECTIVES = ("published", "valid")


def check_train_time_eps(train_time_eps: float | None, objective: str) -> None:
    """ConfigError naming ``model.train_time_eps`` unless it is null or in [0, 1), and
    positive for an objective weighted by w(t)."""
    if train_time_eps is None:
        return
    if not 0.0 <= train_time_eps < 1.0:
        raise ConfigError(f"model.train_time_eps: must be in [0, 1) or null, got {train_time_eps}")
    if train_time_eps == 0.0 and objective in WEIGHTED_OBJECTIVES:
        raise ConfigError(
            f"model.train_time_eps: 0 needs an unweighted objective (cross_entropy, "
            f"cross_entropy_257); the {objective} loss weighs time t by w(t) = -alpha'_t / "
            f"(1 - alpha_t), infinite at t = 0; use a positive value such as 1e-3 (MDLM)"
        )
