"""The image sampler's corrector against an independent implementation of its rates."""

from __future__ import annotations

import math

import torch

from prime import get_schedule
from prime.sampling.corrector import corrector_jump


def _rates(a: float, da: float, kappa: float, state: int, proposal: int, mask: int, size: int):
    """docs/method.md §6.2 in two lines: the predictor's velocity to the proposal plus kappa
    times the divergence-free term B [(1 - alpha) delta_mask + alpha delta_proposal],
    B = alpha' / (alpha (1 - alpha)); the current state's entry is zeroed."""
    u = torch.zeros(size, dtype=torch.float64)
    u[proposal] += da / (1 - a) + kappa * da / (a * (1 - a)) * a
    u[mask] += kappa * da / (a * (1 - a)) * (1 - a)
    u[state] = 0.0
    return u


def test_the_divergence_free_term_keeps_the_masking_marginal():
    """For p_t = alpha delta_x + (1 - alpha) delta_mask, the kappa term moves as much
    mass from x to the mask as back: p_t D = 0, whatever kappa."""
    a, da, mask, x = 0.3, 1.7, 4, 2
    p = torch.zeros(5, dtype=torch.float64)
    p[x], p[mask] = a, 1 - a
    generator = torch.zeros(5, 5, dtype=torch.float64)
    for state in (x, mask):
        u = _rates(a, da, 1.0, state, x, mask, 5) - _rates(a, da, 0.0, state, x, mask, 5)
        generator[state] = u
        generator[state, state] = -u.sum()
    assert torch.allclose(p @ generator, torch.zeros(5, dtype=torch.float64), atol=1e-12)


def test_at_ell_1_the_jump_follows_the_two_line_rates():
    num_classes = 6
    mask = num_classes  # ell = 1: the mask sub-token is the mask token
    schedule = get_schedule("polynomial")
    t, h, kappa = 0.4, 0.05, 3.0
    tt = torch.tensor(t, dtype=torch.float64)
    a, da = float(schedule.alpha(tt)), -float(schedule.d_alpha(tt))
    n, proposal = 200_000, 3
    cases = {"masked": mask, "equal to the proposal": proposal, "another value": 1}
    for label, state in cases.items():
        y = torch.full((1, n), state)
        y_hat = torch.full((1, n), proposal)
        out = corrector_jump(
            y, y_hat, schedule, t, h, kappa, mask, torch.Generator().manual_seed(len(label))
        )
        u = _rates(a, da, kappa, state, proposal, mask, num_classes + 1)
        moved = 1 - math.exp(-h * float(u.sum()))
        expected = {state: 1 - moved}
        for target in (proposal, mask):
            if target != state:
                expected[target] = moved * float(u[target] / u.sum())
        assert set(out.unique().tolist()) <= set(expected), label
        for target, p in expected.items():
            freq = float((out == target).double().mean())
            se = math.sqrt(p * (1 - p) / n)
            assert abs(freq - p) < 4 * se + 1e-12, (label, target, freq, p)
