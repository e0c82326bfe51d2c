"""Sample quality of the 2-D toy: histograms of sampled coordinates, their total-variation
distance to the target, the invalid-sample rate, and both as functions of the number of
sampling steps.

With few steps the sampler reveals several sub-tokens of one coordinate in the same step;
an independent per-digit decoder draws them from a product of marginals and can combine
digits into a code no class has (an *invalid* sample) or into the wrong pixel, where a
joint decoder draws them together. The step sweep is where the two must differ, if they do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from tqdm import tqdm

from prime import SamplerConfig

from ..core import Metric

__all__ = [
    "total_variation",
    "coordinate_histogram",
    "SampleCounts",
    "sample_counts",
    "steps_sweep",
]


def coordinate_histogram(tokens: torch.Tensor, resolution: int) -> torch.Tensor:
    """(R, R) counts of (n, 2) valid coordinate pairs."""
    r = resolution
    return torch.bincount(tokens[:, 0] * r + tokens[:, 1], minlength=r * r).view(r, r)


def total_variation(pmf: torch.Tensor, counts: torch.Tensor, bins: int) -> float:
    """TV distance between ``pmf`` and normalised ``counts`` after pooling to bins x bins."""
    r = pmf.shape[0]
    k = r // bins
    pool = lambda a: a[: bins * k, : bins * k].reshape(bins, k, bins, k).sum((1, 3))  # noqa: E731
    q = counts.double()
    return 0.5 * float((pool(pmf) / pool(pmf).sum() - pool(q) / q.sum()).abs().sum())


@dataclass
class SampleCounts:
    """What ``count`` samples gave: the (R, R) histogram of the valid ones, the samples and
    tokens with a code >= R, and the sampler's network calls."""

    grid: torch.Tensor
    invalid_samples: int
    invalid_tokens: int
    nfe: int


def sample_counts(
    model: torch.nn.Module,
    count: int,
    batch: int,
    sampler: SamplerConfig,
    generator: torch.Generator,
    resolution: int,
    desc: str = "sampling",
) -> SampleCounts:
    r = resolution
    counts = torch.zeros(r, r, dtype=torch.long)
    invalid_samples = invalid_tokens = nfe = 0
    remaining = count
    with tqdm(total=count, desc=desc, unit="sample", leave=False) as bar:
        while remaining > 0:
            n = min(batch, remaining)
            result = model.sample(n, 2, sampler, generator=generator)
            tokens = result.tokens.cpu()
            ok = (tokens < r).all(-1)
            invalid_samples += int((~ok).sum())
            invalid_tokens += int((tokens >= r).sum())
            counts += coordinate_histogram(tokens[ok], r)
            nfe = result.nfe
            remaining -= n
            bar.update(n)
    return SampleCounts(counts, invalid_samples, invalid_tokens, nfe)


def _mean_se(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) / math.sqrt(len(values))


def steps_sweep(
    model: torch.nn.Module,
    pmf: torch.Tensor,
    steps: tuple[int, ...],
    replicates: int,
    per_replicate: int,
    batch: int,
    base: SamplerConfig,
    generator: torch.Generator,
    exact_draw: Callable[[int], torch.Tensor],
    tv_bins: int,
) -> list[Metric]:
    """TV to the target and the invalid-sample rate at each number of steps T.

    For every T, ``replicates`` independent sets of ``per_replicate`` samples; a TV is
    computed on each (TV of a finite set is biased upward, equally for every model at the
    same set size) and the metric is their mean with the standard error between sets.
    ``tv_floor``: the same for as many exact draws (``exact_draw(n)``: (n, 2) tokens).
    Metrics: ``tv_steps{T}``, ``tv_steps{T}_se``, ``invalid_steps{T}`` (a rate) and
    ``invalid_steps{T}_se`` (binomial), ``tv_floor``, ``tv_floor_se``.
    """
    r = pmf.shape[0]
    card = {"replicates": replicates, "samples_per_replicate": per_replicate, "tv_bins": tv_bins}
    out = []
    for t in tqdm(steps, desc="steps sweep", unit="T"):
        sampler = replace(base, steps=t)
        tvs, invalid = [], 0
        for _ in range(replicates):
            got = sample_counts(model, per_replicate, batch, sampler, generator, r, f"T={t}")
            tvs.append(total_variation(pmf, got.grid, tv_bins))
            invalid += got.invalid_samples
        tv, se = _mean_se(tvs)
        n = replicates * per_replicate
        rate = invalid / n
        c = {**card, "steps": t}
        out += [
            Metric(f"tv_steps{t}", tv, c),
            Metric(f"tv_steps{t}_se", se, c),
            Metric(f"invalid_steps{t}", rate, c),
            Metric(f"invalid_steps{t}_se", math.sqrt(rate * (1 - rate) / n), c),
        ]
    floors = []
    for _ in range(replicates):
        grid = coordinate_histogram(exact_draw(per_replicate), r)
        floors.append(total_variation(pmf, grid, tv_bins))
    floor, floor_se = _mean_se(floors)
    c = {**card, "estimator": "as many exact draws from the target"}
    return out + [Metric("tv_floor", floor, c), Metric("tv_floor_se", floor_se, c)]
