"""Sampler settings of the image experiments, in the flow time s = 1 - t (docs/method.md §6.2).

Each takes the three numbers the paper's tables give ([a, beta, c]) and returns what
``prime.Sampler`` uses: a decreasing diffusion-time grid, or a function of t.

    time warp      s -> 1 - a (1 - s)^beta + c       applied to the uniform grid k / N
    temperature    tau(s) = a s^beta + c
    corrector      kappa(s) = a s^beta (1 - s)^beta  (the released code uses beta for both
                                                       exponents and ignores c)

The triple [1, 0, 0] turns the time warp off: as written it maps every s to 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["time_grid", "warped_grid", "temperature_schedule", "corrector_schedule"]


def time_grid(num_steps: int, eps: float = 1e-5) -> torch.Tensor:
    """(T+1,) float64 grid t_k = 1 - k (1 - eps) / T, from 1 down to eps."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    k = torch.arange(num_steps + 1, dtype=torch.float64)
    return 1.0 - k * (1.0 - eps) / num_steps


def warped_grid(num_steps: int, a: float = 1.0, beta: float = 1.0, c: float = 0.0) -> torch.Tensor:
    """(N + 1,) decreasing diffusion times from the warped flow-time grid."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    s = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    if (a, beta, c) != (1.0, 0.0, 0.0):
        s = (1.0 - a * (1.0 - s) ** beta + c).clamp(0.0, 1.0)
    t = 1.0 - s
    if not bool((t[1:] < t[:-1]).all()):
        raise ValueError(f"time warp [{a}, {beta}, {c}] does not give a decreasing grid")
    return t


def temperature_schedule(a: float, beta: float, c: float) -> Callable[[float], float]:
    """tau(t) = a (1 - t)^beta + c; must stay positive on [0, 1] (beta = 0: tau = a + c,
    as the authors' [1, 0, 0] reads)."""
    if beta < 0.0 or min(a * 0.0**beta + c, a + c) <= 0.0:
        raise ValueError(f"temperature [{a}, {beta}, {c}] is not positive on [0, 1]")
    return lambda t: a * (1.0 - t) ** beta + c


def corrector_schedule(a: float, beta: float, c: float = 0.0) -> Callable[[float], float]:
    """kappa(t) = a s^beta (1 - s)^beta with s = 1 - t (c is ignored, as in the code)."""
    if a < 0.0:
        raise ValueError(f"corrector strength a must be >= 0, got {a}")
    return lambda t: a * ((1.0 - t) * t) ** beta
