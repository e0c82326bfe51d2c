"""Paired comparisons of two variants on the same evaluation blocks, with a verdict.

Every run stores its per-block values (:data:`benchmarks.tasks.likelihood.PER_BLOCK_ARTIFACT`:
nats per token, per dimension or per sample, one value per evaluation block). Two runs of
one seed were evaluated on the same N blocks, and diffusion models with the same seeded
time draws (common random numbers), so their difference is estimated block by block:

    d_i = x_i(a) - x_i(b),   d = mean_i d_i,   SE(d) = sd_i(d_i) / sqrt(N),

far tighter than the two runs' separate standard errors when the blocks' difficulty
dominates both. With k >= 2 training seeds common to both variants, d is the mean of the
k per-seed differences and SE(d) = sd over seeds / sqrt(k), which holds the spread
between trainings as well as the evaluation's noise.

Runs are paired by (variant, seed). Two runs of one variant at one seed (other settings,
two run ids: :mod:`.conflicts`) are never paired in each other's place: a claim that
would need one of them says so instead of a verdict.

A claim "a is below b" is *confirmed* when the 95% interval d +- q SE(d) lies below 0,
*refuted* when it lies above, and *not resolved at this budget* otherwise. With one seed
SE(d) comes from N blocks (hundreds), and q = 1.96, the normal quantile. With k seeds it
comes from k values, so q is Student's t quantile with k - 1 degrees of freedom: 4.30 at
k = 3, 2.78 at k = 5 (the normal one would call a 3-seed interval 95% that is about 80%).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy import stats

from ..tasks.likelihood import PER_BLOCK_ARTIFACT
from .context import ReportContext

__all__ = [
    "AmbiguousPairing",
    "Claim",
    "paired_difference",
    "verdict",
    "combine_seeds",
    "seed_pairs",
    "comparison_table",
    "Z95",
]

Z95 = 1.959964

T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    """``lower`` (a variant) has a lower value than ``than`` (another variant).

    ``estimator``: the per-block values compared (``valid_bound`` or ``published``); a run
    that has the exact NLL (an AR model) is compared by it instead."""

    text: str
    lower: str
    than: str
    estimator: str = "valid_bound"


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, standard error) of a - b over paired blocks: (N,) arrays each."""
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired values must be two (N,) arrays, N >= 2; got {a.shape}, {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d))


def verdict(mean: float, se: float, z: float = Z95) -> str:
    """The claim "a is below b" from d = a - b and its standard error."""
    if mean + z * se < 0:
        return "confirmed"
    if mean - z * se > 0:
        return "refuted"
    return "not resolved at this budget"


def combine_seeds(per_seed: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(d, SE(d), q) from each training seed's (difference, SE): one seed, its estimate and
    the normal quantile; k seeds, their mean, SE = sd / sqrt(k) and the t quantile with
    k - 1 degrees of freedom, so that d +- q SE(d) is a 95% interval either way."""
    if len(per_seed) == 1:
        return (*per_seed[0], Z95)
    means = np.array([m for m, _ in per_seed])
    q = float(stats.t.ppf(0.975, len(means) - 1))
    return float(means.mean()), float(means.std(ddof=1)) / math.sqrt(len(means)), q


class AmbiguousPairing(ValueError):
    """A variant has several runs at a seed both sides of a claim have."""


def ambiguity(variant: str, seed: int, runs: int) -> str:
    """What a claim says in place of a verdict when ``variant`` has ``runs`` runs at
    ``seed``."""
    return (
        f"not paired: {runs} runs of {variant} at seed {seed}, of different settings "
        "(the index lists them)"
    )


def seed_pairs(items: Iterable[tuple[str, int, T]], lower: str, than: str) -> list[tuple[T, T]]:
    """(lower's item, than's item) for each training seed both variants have, in seed order,
    from (variant, seed, item) triples: the pairs a claim "lower below than" compares.
    :class:`AmbiguousPairing` (its message is :func:`ambiguity`'s) where a variant has
    several items at one of those seeds: no item is chosen for another."""
    by_seed: dict[str, dict[int, list[T]]] = {lower: defaultdict(list), than: defaultdict(list)}
    for variant, seed, item in items:
        if variant in by_seed:
            by_seed[variant][seed].append(item)
    common = sorted(set(by_seed[lower]) & set(by_seed[than]))
    for seed in common:
        for variant in (lower, than):
            if len(by_seed[variant][seed]) > 1:
                raise AmbiguousPairing(ambiguity(variant, seed, len(by_seed[variant][seed])))
    return [(by_seed[lower][seed][0], by_seed[than][seed][0]) for seed in common]


def _values(stored: dict[str, np.ndarray], estimator: str) -> np.ndarray:
    return stored["exact"] if "exact" in stored else stored[estimator]


def _row(claim: Claim, runs: dict[str, dict[int, list[str]]], stored: dict) -> dict[str, str]:
    """The claim's row from ``runs`` (variant -> seed -> MLflow run ids)."""
    seeds = sorted(set(runs[claim.lower]) & set(runs[claim.than]))
    row = {"claim": claim.text, "seeds": str(len(seeds))}
    for seed in seeds:
        for variant in (claim.lower, claim.than):
            if len(runs[variant][seed]) > 1:
                return {**row, "verdict": ambiguity(variant, seed, len(runs[variant][seed]))}
    per_seed = []
    for seed in seeds:
        a, b = stored[runs[claim.lower][seed][0]], stored[runs[claim.than][seed][0]]
        if a is None or b is None:
            return {**row, "verdict": "no per-block values stored (re-run to compare)"}
        if not np.array_equal(a["index"], b["index"]):
            return {**row, "verdict": "not paired: evaluated on different blocks"}
        per_seed.append(paired_difference(_values(a, claim.estimator), _values(b, claim.estimator)))
    if not per_seed:
        return {**row, "verdict": "no common training seed"}
    mean, se, q = combine_seeds(per_seed)
    n = len(stored[runs[claim.lower][seeds[0]][0]]["index"])
    return {
        **row,
        "blocks": str(n),
        "difference ± SE": f"{mean:+.4f} ± {se:.4f}",
        "95% interval": f"[{mean - q * se:+.4f}, {mean + q * se:+.4f}]",
        "verdict": verdict(mean, se, q),
    }


def _load(ctx: ReportContext, run_id: str) -> dict[str, np.ndarray] | None:
    try:
        path = ctx.download(run_id, "/".join(PER_BLOCK_ARTIFACT))
    except Exception:  # runs evaluated before the values were stored
        return None
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


def comparison_table(
    ctx: ReportContext,
    claims: Iterable[Claim],
    name: str,
    title: str,
    unit: str,
    notes: Iterable[str] = (),
) -> None:
    """One row per claim whose two variants both have runs: the paired difference
    (``unit``), its interval and the verdict. Writes nothing if no claim applies."""
    # variant -> seed -> MLflow run ids: several where runs of other settings share both
    runs: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for run, cfg in ctx.rows():
        runs[cfg.variant][cfg.seed].append(run["run_id"])
    claims = [c for c in claims if c.lower in runs and c.than in runs]
    if not claims:
        return
    stored = {
        rid: _load(ctx, rid)
        for by_seed in runs.values()
        for ids in by_seed.values()
        if len(ids) == 1
        for rid in ids
    }
    rows = [_row(claim, runs, stored) for claim in claims]
    # one column order whichever claim comes first (a claim not compared has fewer cells)
    order = ["claim", "seeds", "blocks", "difference ± SE", "95% interval", "verdict"]
    table = pd.DataFrame(rows)
    ctx.write_table(
        table[[c for c in order if c in table.columns]].fillna("-"),
        name,
        title,
        notes=[
            f"Difference: (first - second) in {unit}, paired over the same evaluation blocks "
            "(and, for diffusion models, the same seeded time draws); an AR model enters "
            "with its exact NLL, a diffusion model with the estimator named.",
            "Verdict at 95%: confirmed if the interval lies below 0, refuted if above, "
            "otherwise not resolved at this budget.",
            "With one training seed the interval holds the evaluation's noise only, not the "
            "spread between trainings; with k seeds, the SE is that between the seeds' "
            "paired differences, and the interval is +- Student's t quantile (k - 1 degrees "
            "of freedom: 4.30 SE at k = 3) instead of +- 1.96 SE.",
            *notes,
        ],
    )
