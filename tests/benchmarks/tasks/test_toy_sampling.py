"""The toy's sample-quality measures against samplers whose output is known."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from benchmarks.tasks.toy2d import target_pmf
from benchmarks.tasks.toy2d_sampling import steps_sweep, total_variation
from prime import SamplerConfig


class _Exact(torch.nn.Module):
    """Draws exactly from ``pmf``, and replaces a fraction ``bad`` of first coordinates by
    the invalid code R, whatever the number of steps."""

    def __init__(self, pmf: torch.Tensor, bad: float = 0.0):
        super().__init__()
        self.pmf, self.bad = pmf, bad
        self.steps_seen: list[int] = []

    def sample(self, n, length, sampler, generator):
        self.steps_seen.append(sampler.steps)
        r = self.pmf.shape[0]
        flat = torch.multinomial(self.pmf.flatten(), n, replacement=True, generator=generator)
        tokens = torch.stack([flat // r, flat % r], -1)
        k = round(self.bad * n)
        tokens[:k, 0] = r
        return SimpleNamespace(tokens=tokens, nfe=sampler.steps)  # what the sweep reads


def _sweep(model, pmf, steps=(2, 8), replicates=4, per=4000):
    gen = torch.Generator().manual_seed(0)
    exact_gen = torch.Generator().manual_seed(1)

    def exact(n):
        flat = torch.multinomial(pmf.flatten(), n, replacement=True, generator=exact_gen)
        return torch.stack([flat // pmf.shape[0], flat % pmf.shape[0]], -1)

    metrics = steps_sweep(
        model, pmf, steps, replicates, per, 1000, SamplerConfig(steps=1), gen, exact, 16
    )
    return {m.name: m.value for m in metrics}


def test_an_exact_sampler_sits_on_the_exact_draw_floor_at_every_step_count():
    pmf = target_pmf("chelsea", 64, 4.0)
    model = _Exact(pmf)
    m = _sweep(model, pmf)
    assert set(model.steps_seen) == {2, 8}
    for t in (2, 8):
        # Same distribution, same set size: the TVs differ by noise only.
        gap = abs(m[f"tv_steps{t}"] - m["tv_floor"])
        assert gap < 4 * (m[f"tv_steps{t}_se"] ** 2 + m["tv_floor_se"] ** 2) ** 0.5
        assert m[f"invalid_steps{t}"] == 0.0


def test_the_invalid_rate_and_its_binomial_error():
    pmf = target_pmf("chelsea", 64, 4.0)
    m = _sweep(_Exact(pmf, bad=0.1), pmf, steps=(4,))
    assert m["invalid_steps4"] == pytest.approx(0.1)
    assert m["invalid_steps4_se"] == pytest.approx((0.1 * 0.9 / 16000) ** 0.5)


def test_total_variation_of_a_point_mass_against_uniform():
    pmf = torch.full((4, 4), 1 / 16, dtype=torch.float64)
    counts = torch.zeros(4, 4)
    counts[0, 0] = 10
    assert total_variation(pmf, counts, 4) == pytest.approx(15 / 16)
    assert total_variation(pmf, counts, 2) == pytest.approx(0.75)  # pooled 2x2 cells
