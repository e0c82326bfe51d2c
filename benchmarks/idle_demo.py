"""Idle steps of the MDM-Prime sampler: simulation against the closed form (PRIME_SPEC §6.4).

The sampler's reveal decisions do not depend on the network, so a network that returns
constant logits gives the same idle-step statistics as a trained model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from prime import SubTokenizer, idle_step_probabilities, sample

# Idle-step ratio column of the paper's Table 1 (L = T = 1024), in percent.
PAPER_ISR = {1: 36.77, 2: 13.52, 3: 4.97, 4: 1.83, 6: 0.25, 8: 0.03}


@dataclass(frozen=True)
class IdleRow:
    ell: int
    closed_form: float  # expected ISR
    simulated: float  # mean ISR over the runs
    standard_error: float  # of the simulated mean, from the closed-form variance bound
    paper: float | None  # percent, when the setting is the paper's

    @property
    def z(self) -> float:
        return (self.simulated - self.closed_form) / self.standard_error


def simulate_idle_ratio(
    seq_len: int, num_steps: int, ell: int, runs: int, seed: int = 0
) -> torch.Tensor:
    """(runs,) simulated ISR of ``runs`` independent sequences."""
    codec = SubTokenizer(2, ell)  # b = 2 for every ell; the alphabet does not affect idling

    def constant_net(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*y_t.shape[:-1], codec.num_classes)

    result = sample(
        constant_net,
        codec,
        batch_size=runs,
        seq_len=seq_len,
        num_steps=num_steps,
        eps=0.0,
        generator=torch.Generator().manual_seed(seed),
    )
    return result.idle_ratio


def run_idle_demo(
    seq_len: int = 1024,
    num_steps: int = 1024,
    ells: Sequence[int] = (1, 2, 3, 4, 6, 8),
    runs: int = 10,
    seed: int = 0,
) -> list[IdleRow]:
    """Print and return the closed-form vs simulated ISR table."""
    rows = []
    for ell in tqdm(ells, desc="simulating samplers", unit="ell"):
        probs = idle_step_probabilities(num_steps, seq_len, ell)
        # Idle indicators of different steps are negatively correlated, so the sum of
        # their Bernoulli variances bounds the variance of the idle count.
        se = math.sqrt(float((probs * (1 - probs)).sum()) / runs) / num_steps
        ratios = simulate_idle_ratio(seq_len, num_steps, ell, runs, seed + ell)
        paper = PAPER_ISR.get(ell) if (seq_len, num_steps) == (1024, 1024) else None
        rows.append(IdleRow(ell, float(probs.mean()), float(ratios.mean()), se, paper))
    print(f"\nIdle-step ratio, L={seq_len}, T={num_steps}, linear schedule, {runs} runs each")
    print(f"{'ell':>4} {'paper':>8} {'closed form':>12} {'simulated':>18} {'z':>6}")
    for r in rows:
        paper = f"{r.paper:.2f}%" if r.paper is not None else "-"
        sim = f"{100 * r.simulated:.2f}% ± {100 * r.standard_error:.2f}"
        print(f"{r.ell:>4} {paper:>8} {100 * r.closed_form:>11.2f}% {sim:>18} {r.z:>6.2f}")
    return rows
