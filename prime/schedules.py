"""Masking schedules alpha_t (docs/method.md §3.1).

Diffusion time throughout: t = 0 is clean data, t = 1 is (almost) fully masked, and
alpha_t = P(a sub-token is still unmasked at time t), decreasing from alpha_0 = 1.
The flow-matching time of the image code is s = 1 - t.

The continuous-time MDM loss weights the cross-entropy at time t by

    w(t) = -alpha'_t / (1 - alpha_t)  >= 0.

| schedule     | alpha_t                         | w(t)                                  |
|--------------|---------------------------------|---------------------------------------|
| linear       | 1 - t                           | 1 / t                                 |
| loglinear    | 1 - (1 - eps) t                 | 1 / t          (MDLM text, eps=1e-3)  |
| polynomial   | (1 - t)**n = s**n               | n s**(n-1) / (1 - s**n)   (images)    |
| cosine       | eps + (1 - eps) cos(pi t / 2)   | (1-eps)(pi/2) sin(pi t/2) / (1-alpha) |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "Schedule",
    "LinearSchedule",
    "LogLinearSchedule",
    "PolynomialSchedule",
    "CosineSchedule",
    "get_schedule",
    "SCHEDULES",
]


class Schedule:
    """alpha_t with its derivative and the loss weight; ``t`` is a float tensor in [0, 1]."""

    name: str = "base"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """d alpha_t / dt (<= 0)."""
        raise NotImplementedError

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = -alpha'_t / (1 - alpha_t): the weight of the cross-entropy at time t."""
        return -self.d_alpha(t) / (1.0 - self.alpha(t))


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """alpha_t = 1 - t (the toy experiment; makes idle-step closed forms simplest)."""

    name = "linear"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -1.0)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 / t


@dataclass(frozen=True)
class LogLinearSchedule(Schedule):
    """MDLM's log-linear schedule: sigma(t) = -log(1 - (1 - eps) t), alpha_t = e^{-sigma}.

    MDLM writes the weight as sigma'(t) / expm1(sigma(t)); both numerator and
    denominator carry the factor (1 - eps) / (1 - (1 - eps) t), so w(t) = 1/t exactly.
    """

    eps: float = 1e-3
    name = "loglinear"

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"loglinear schedule: eps must be in [0, 1), got {self.eps}")

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 / t


@dataclass(frozen=True)
class PolynomialSchedule(Schedule):
    """alpha = s**n in flow time s = 1 - t (the image models use n = 3)."""

    n: float = 3.0
    name = "polynomial"

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"polynomial schedule: n must be > 0, got {self.n}")

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return (1.0 - t) ** self.n

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -self.n * (1.0 - t) ** (self.n - 1.0)


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """alpha_t = eps + (1 - eps) cos(pi t / 2) (MDLM's cosine schedule)."""

    eps: float = 0.0
    name = "cosine"

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"cosine schedule: eps must be in [0, 1), got {self.eps}")

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return self.eps + (1.0 - self.eps) * torch.cos(0.5 * math.pi * t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -(1.0 - self.eps) * 0.5 * math.pi * torch.sin(0.5 * math.pi * t)


SCHEDULES: dict[str, type[Schedule]] = {
    "linear": LinearSchedule,
    "loglinear": LogLinearSchedule,
    "polynomial": PolynomialSchedule,
    "cosine": CosineSchedule,
}


def get_schedule(schedule: str | Schedule, **kwargs: float) -> Schedule:
    """A schedule by name (``linear``, ``loglinear``, ``polynomial``, ``cosine``)."""
    if isinstance(schedule, Schedule):
        if kwargs:
            raise ValueError("keyword arguments are only accepted with a schedule name")
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[schedule](**kwargs)
    except TypeError as err:
        raise ValueError(f"schedule {schedule!r}: bad arguments {kwargs}: {err}") from None
