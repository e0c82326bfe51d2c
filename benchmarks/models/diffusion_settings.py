"""Settings shared by the masked-diffusion model entries (prime, mdm, mdm-mixture): the
schedule and masking names, and the check of the training times' lower end.

Training draws t in [train_time_eps, 1). An objective weighted by w(t) = -alpha'_t /
(1 - alpha_t) (published, valid) needs train_time_eps > 0: w is infinite at t = 0, where
nothing is masked (0 * inf), and the loss has unbounded variance near it. The unweighted
cross-entropy objectives are finite at every t, t = 0 included, so they may draw from
the whole of [0, 1), as the authors' image training does (s ~ U(0, 1)).

Sub-tokens (prime, bd3lm): ell base-b digits per token, b = min{b >= 2 : b^ell >= C}.
At ell = ceil(log2 C) the base is already 2 and every digit is needed; past it b stays 2,
each further digit is 0 for every token, and the digit grid the joint decoder and the
sampler sum over (b^(ell-1) entries per token once that exceeds C) doubles with each:
ell = 40 on C = 512 needs 2^39 entries per token, ell = 64 overflows the int64 codes.
:func:`check_ell` allows 1 <= ell <= ceil(log2 C).
"""

from __future__ import annotations

from typing import Literal

from ..config.validation import within
from ..core import ConfigError

__all__ = [
    "ScheduleName",
    "MaskingName",
    "WEIGHTED_OBJECTIVES",
    "TIME_EPS_RANGE",
    "check_ell",
    "check_train_time_eps",
]

ScheduleName = Literal["linear", "loglinear", "polynomial", "cosine"]
MaskingName = Literal["independent", "at_least_one"]
WEIGHTED_OBJECTIVES = ("published", "valid")
# Field metadata of every model's time_eps (benchmarks.config.validation.within).
TIME_EPS_RANGE = within(
    0, 1, high_open=True, why="the smallest diffusion time: times are drawn from [eps, 1)"
)


def check_ell(ell: int, num_classes: int) -> None:
    """ConfigError naming ``model.ell`` unless 1 <= ell <= ceil(log2 C), C = ``num_classes``
    (the module's docstring says why)."""
    most = max(1, (num_classes - 1).bit_length())  # ceil(log2 C)
    if not 1 <= ell <= most:
        raise ConfigError(
            f"model.ell: must be in [1, {most}] for the task's C = {num_classes} classes, got "
            f"{ell} (ell = {most} already writes a token as {most} binary digits; each "
            "further digit is 0 for every token and doubles the digit grid)"
        )


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
