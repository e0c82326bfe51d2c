"""Closed-form idle-step analysis (docs/method.md §6.4, the paper's Proposition A.1).

The sampler's decision to reveal a sub-token does not depend on the network, so idle
steps depend only on (schedule, grid, L, ell). Starting from all masked at t_0 = 1, a
sub-token is revealed during step k (t_{k-1} -> t_k) with probability

    r_k = (alpha_{t_k} - alpha_{t_{k-1}}) / (1 - alpha_{t_0}) = Delta alpha_k / (1 - alpha_{t_0}),

independently of the other L * ell sub-tokens, hence

    P(step k idle)   = (1 - r_k) ** (L * ell)
    E[# idle steps]  = sum_{k=1}^{T} (1 - r_k) ** (L * ell)

(alpha_{t_0} = 0 for the linear schedule, which gives the paper's formula). With the
linear schedule and a uniform grid ending at 0: E[# idle] = T (1 - 1/T) ** (L * ell);
at L = T = 1024 this is 36.77%, 13.52%, 4.97%, 1.83%, 0.25%, 0.03% of the steps for
ell = 1, 2, 3, 4, 6, 8 -- the ISR column of the paper's Table 1.

Caching a batch of B sequences needs the whole batch idle: replace L * ell by B * L * ell.
"""

from __future__ import annotations

import torch

from ..schedules import Schedule, get_schedule
from .step_schedules import time_grid

__all__ = [
    "idle_step_probabilities",
    "expected_idle_steps",
    "expected_idle_ratio",
    "expected_batch_idle_steps",
    "expected_nfe_with_cache",
]


def idle_step_probabilities(
    num_steps: int,
    seq_len: int,
    ell: int,
    schedule: str | Schedule = "linear",
    *,
    eps: float = 0.0,
    batch_size: int = 1,
) -> torch.Tensor:
    """(T,) float64: P(step k is idle for all ``batch_size`` sequences), k = 1..T.

    The grid is the sampler's, t_k = 1 - k (1 - eps) / T (the final noise-removal step
    at t_T is not one of the T steps).
    """
    if seq_len < 1 or ell < 1 or batch_size < 1:
        raise ValueError(
            f"seq_len, ell and batch_size must be >= 1, got {seq_len}, {ell}, {batch_size}"
        )
    alpha = get_schedule(schedule).alpha(time_grid(num_steps, eps))
    reveal = (alpha[1:] - alpha[:-1]) / (1.0 - alpha[0])
    # log1p keeps (1 - r)^n accurate when r is tiny and n is large.
    return torch.exp(batch_size * seq_len * ell * torch.log1p(-reveal))


def expected_idle_steps(
    num_steps: int,
    seq_len: int,
    ell: int,
    schedule: str | Schedule = "linear",
    *,
    eps: float = 0.0,
) -> float:
    """E[# idle steps] of one sequence = sum_k (1 - Delta alpha_k) ** (seq_len * ell)."""
    return float(idle_step_probabilities(num_steps, seq_len, ell, schedule, eps=eps).sum())


def expected_idle_ratio(
    num_steps: int,
    seq_len: int,
    ell: int,
    schedule: str | Schedule = "linear",
    *,
    eps: float = 0.0,
) -> float:
    """Expected idle-step ratio (ISR) = E[# idle steps] / T."""
    return expected_idle_steps(num_steps, seq_len, ell, schedule, eps=eps) / num_steps


def expected_batch_idle_steps(
    num_steps: int,
    seq_len: int,
    ell: int,
    batch_size: int,
    schedule: str | Schedule = "linear",
    *,
    eps: float = 0.0,
) -> float:
    """E[# steps where the whole batch is idle] = sum_k (1 - Delta alpha_k) ** (B L ell)."""
    probs = idle_step_probabilities(
        num_steps, seq_len, ell, schedule, eps=eps, batch_size=batch_size
    )
    return float(probs.sum())


def expected_nfe_with_cache(
    num_steps: int,
    seq_len: int,
    ell: int,
    batch_size: int = 1,
    schedule: str | Schedule = "linear",
    *,
    eps: float = 0.0,
) -> float:
    """E[NFE] of the caching sampler, final step included: T + 1 - E[# batch-idle steps]."""
    return (
        num_steps
        + 1
        - expected_batch_idle_steps(num_steps, seq_len, ell, batch_size, schedule, eps=eps)
    )
