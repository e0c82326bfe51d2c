"""Generative perplexity of two models compared at equal sampler steps, with a verdict.

The log gen PPL of a run is a ratio over its N samples, R = sum_i n_i / sum_i t_i (n_i:
the judge's NLL over sample i's scored tokens, t_i: their number). A claim "a has the
lower gen PPL" reads d = R_a - R_b (nats per token; exp(d) is the ratio of the two gen
PPLs), whose standard error comes from:

* k >= 2 training seeds both models have: the spread of the k per-seed differences,
  SE = sd / sqrt(k), with Student's t quantile (:func:`.paired.combine_seeds`); it holds
  the samples' noise and the spread between trainings;
* one seed and per-sample judge NLLs stored (:data:`PER_SAMPLE_ARTIFACT`): the delta
  method. Sample i's influence on R is z_i = (n_i - R t_i) / mean(t), Var(R) ~ var(z) / N.
  Two runs of one seed, sample count and sampler batch draw sample i from the same seeded
  generator (:mod:`benchmarks.tasks.text_samples`), so the samples pair:
  SE = sd_i(z_i(a) - z_i(b)) / sqrt(N); otherwise SE = sqrt(var z(a) / N_a + var z(b) / N_b);
* one seed without per-sample values: none. The metric's card holds only the sums, from
  which no spread can be had, so the point difference is shown without a verdict.

Verdicts at 95% as :func:`.paired.verdict`. Two runs under different judges, or two
diffusion models sampled at different step counts, are not compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config.run_config import RunConfig
from .context import ReportContext
from .paired import Z95, AmbiguousPairing, Claim, combine_seeds, seed_pairs, verdict
from .tables import run_value
from .text_quality import GEN_PPL, Judges

__all__ = [
    "PER_SAMPLE_ARTIFACT",
    "Sampled",
    "claim_row",
    "claims_table",
    "load_per_sample",
    "log_ppl_difference",
    "log_ppl_influence",
]

# Per-sample judge values a text run may store: nll_sum (N,) nats over each sample's
# scored tokens, tokens (N,) their number, entropy (N,) optional, nats.
PER_SAMPLE_ARTIFACT = ("samples", "gen_ppl_per_sample.npz")

_COLUMNS = (
    "claim",
    "seeds",
    "steps",
    "NFE (first / second)",
    "gen PPL (first / second)",
    "log gen PPL difference ± SE",
    "95% interval",
    "standard error",
    "verdict",
)


@dataclass(frozen=True)
class Sampled:
    """One run's samples, as a claim reads them."""

    run: pd.Series
    cfg: RunConfig
    steps: int | str | None
    """The sampler's steps T, ``first hitting`` (no grid), or None: an AR model."""

    @property
    def gen_ppl(self) -> float | None:
        return run_value(self.run, f"metrics.{GEN_PPL}")

    @property
    def nfe(self) -> str:
        value = run_value(self.run, "metrics.sample_nfe")
        return "-" if value is None else f"{value:.0f}"


def load_per_sample(ctx: ReportContext, run_id: str) -> dict[str, np.ndarray] | None:
    """The run's per-sample judge values, or None where it stored none."""
    try:
        path = ctx.download(run_id, "/".join(PER_SAMPLE_ARTIFACT))
    except Exception:  # no such artifact: runs that stored only the sums
        return None
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


def log_ppl_influence(nll: np.ndarray, tokens: np.ndarray) -> tuple[float, np.ndarray]:
    """(R, z): log gen PPL = sum n / sum t and each sample's influence (N,) on it."""
    n, t = np.asarray(nll, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
    if n.shape != t.shape or n.ndim != 1 or len(n) < 2 or t.sum() <= 0:
        raise ValueError(f"per-sample values: two (N,) arrays, N >= 2; got {n.shape}, {t.shape}")
    ratio = float(n.sum() / t.sum())
    return ratio, (n - ratio * t) / t.mean()


def log_ppl_difference(a: dict, b: dict, paired: bool) -> tuple[float, float]:
    """(R_a - R_b, its SE) from two runs' per-sample ``nll_sum`` and ``tokens``."""
    ra, za = log_ppl_influence(a["nll_sum"], a["tokens"])
    rb, zb = log_ppl_influence(b["nll_sum"], b["tokens"])
    if paired:
        if za.shape != zb.shape:
            raise ValueError(f"paired samples: {za.shape} and {zb.shape}")
        d = za - zb
        return ra - rb, float(d.std(ddof=1)) / math.sqrt(len(d))
    return ra - rb, math.sqrt(za.var(ddof=1) / len(za) + zb.var(ddof=1) / len(zb))


def same_draws(a: RunConfig, b: RunConfig) -> bool:
    """Whether sample i of each run came from the same seeded generator."""
    pa, pb = a.task.params, b.task.params
    return (a.seed, pa.sample_count, pa.sample_batch) == (b.seed, pb.sample_count, pb.sample_batch)


def _single_seed(ctx: ReportContext, a: Sampled, b: Sampled) -> tuple[float, float, str]:
    """(d, SE, how) of one training seed; SE NaN without per-sample values."""
    per_a, per_b = (load_per_sample(ctx, x.run["run_id"]) for x in (a, b))
    if per_a is None or per_b is None:
        return math.log(a.gen_ppl / b.gen_ppl), math.nan, "none: no per-sample values stored"
    paired = same_draws(a.cfg, b.cfg) and len(per_a["tokens"]) == len(per_b["tokens"])
    d, se = log_ppl_difference(per_a, per_b, paired)
    n = len(per_a["tokens"])
    return d, se, f"samples, {'paired' if paired else 'unpaired'} (N = {n})"


def claim_row(
    ctx: ReportContext, claim: Claim, items: Iterable[tuple[str, int, Sampled]]
) -> dict[str, str] | None:
    """The claim's row from (variant, seed, samples) triples; None when the two variants
    share no seed at which both have a gen PPL."""
    row = {"claim": claim.text}
    try:
        pairs = seed_pairs(items, claim.lower, claim.than)
    except AmbiguousPairing as err:
        return {**row, "verdict": str(err)}
    pairs = [(a, b) for a, b in pairs if a.gen_ppl is not None and b.gen_ppl is not None]
    if not pairs:
        return None
    row["seeds"] = str(len(pairs))
    steps = {str(x.steps) for pair in pairs for x in pair if x.steps is not None}
    row["steps"] = "/".join(sorted(steps)) or "-"
    if len({Judges.of(x.run) for pair in pairs for x in pair}) > 1:
        return {**row, "verdict": "not compared: judged by different judges"}
    if len(steps) > 1:
        return {**row, "verdict": "not compared: sampled at different step counts"}
    row["NFE (first / second)"] = " / ".join(
        "/".join(sorted({pair[i].nfe for pair in pairs})) for i in (0, 1)
    )
    row["gen PPL (first / second)"] = "; ".join(
        f"{a.gen_ppl:.2f} / {b.gen_ppl:.2f}" for a, b in pairs
    )
    if len(pairs) > 1:
        d, se, q = combine_seeds([(math.log(a.gen_ppl / b.gen_ppl), math.nan) for a, b in pairs])
        how = f"spread of {len(pairs)} training seeds"
    else:
        (d, se, how), q = _single_seed(ctx, *pairs[0]), Z95
    row["standard error"] = how
    if math.isnan(se):
        return {**row, "log gen PPL difference ± SE": f"{d:+.4f}", "verdict": "no verdict: no SE"}
    return {
        **row,
        "log gen PPL difference ± SE": f"{d:+.4f} ± {se:.4f}",
        "95% interval": f"[{d - q * se:+.4f}, {d + q * se:+.4f}]",
        "verdict": verdict(d, se, q),
    }


def claims_table(
    ctx: ReportContext,
    rows: Sequence[dict[str, str]],
    name: str,
    title: str,
    notes: Iterable[str] = (),
) -> None:
    """Write the claims' rows (nothing when there are none), one column order for all."""
    if not rows:
        return
    table = pd.DataFrame(list(rows))
    table = table[[c for c in _COLUMNS if c in table.columns]].fillna("-")
    ctx.write_table(
        table,
        name,
        title,
        notes=[
            "Difference: log gen PPL(first) - log gen PPL(second), nats per scored token "
            "(exp of it is the ratio of the gen PPLs); a claim is that the first is lower. "
            "Verdict at 95%: confirmed if the interval lies below 0, refuted if above, "
            "otherwise not resolved at this budget.",
            "Standard error: with several training seeds, the spread of the per-seed "
            "differences (Student's t interval); with one, the delta method over the "
            "per-sample judge NLLs, paired over samples drawn from the same seeds (same "
            "seed, sample count and sampler batch) or unpaired; a run that stored only the "
            "gen PPL (the card's sums) gives no SE, and no verdict is made.",
            "Equal steps T, not equal NFE: an idle step reuses the cached prediction, so "
            "the measured NFE (shown) can differ at equal T. A lower gen PPL with a lower "
            "entropy can be repetitive text: read the entropy beside it.",
            *notes,
        ],
    )
