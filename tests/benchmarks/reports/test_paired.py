"""Paired comparisons: the difference's standard error, the verdict, seeds, pairing checks."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks.reports.context import ReportContext
from benchmarks.reports.paired import Claim, comparison_table, paired_difference, verdict


def test_pairing_removes_the_blocks_difficulty_from_the_standard_error():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(2.0, 0.5, 400)  # shared by both models: it cancels
    a = difficulty + 0.01 + rng.normal(0, 0.01, 400)
    b = difficulty + rng.normal(0, 0.01, 400)
    mean, se = paired_difference(a, b)
    d = a - b
    assert mean == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / 20)
    unpaired = math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert se < unpaired / 20
    # a is 0.01 above b, ~7 paired SE: "a below b" is refuted, "b below a" confirmed; the
    # unpaired interval could not tell either.
    assert verdict(mean, se) == "refuted" and verdict(-mean, se) == "confirmed"
    assert verdict(mean, unpaired) == "not resolved at this budget"


def test_a_constant_difference_is_exact():
    base = np.linspace(1.0, 3.0, 50)
    assert paired_difference(base - 0.25, base) == pytest.approx((-0.25, 0.0))


@pytest.mark.parametrize(
    "mean, se, expected",
    [
        (-0.10, 0.05, "confirmed"),
        (-0.05, 0.05, "not resolved at this budget"),
        (0.05, 0.05, "not resolved at this budget"),
        (0.10, 0.05, "refuted"),
        (-0.0981, 0.05, "confirmed"),  # just past 1.96 SE
        (-0.0979, 0.05, "not resolved at this budget"),
    ],
)
def test_verdict_reads_the_95_percent_interval(mean, se, expected):
    assert verdict(mean, se) == expected


def test_paired_values_must_have_one_shape():
    with pytest.raises(ValueError, match="two \\(N,\\) arrays"):
        paired_difference(np.zeros(3), np.zeros(4))


class _Store(ReportContext):
    """A report context whose runs' per-block values are given in memory."""

    def __init__(self, tmp: Path, values: dict[tuple[str, int], dict]):
        ids = {key: f"run{i}" for i, key in enumerate(values)}
        runs = pd.DataFrame({"run_id": list(ids.values())})
        configs = {ids[k]: SimpleNamespace(variant=k[0], seed=k[1]) for k in values}
        super().__init__("cpu", tmp, runs, None, configs)
        self._files = {}
        for key, stored in values.items():
            path = tmp / f"{ids[key]}.npz"
            np.savez(path, **stored)
            self._files[ids[key]] = path

    def download(self, run_id: str, artifact_path: str) -> Path:
        return self._files[run_id]


def _row(ctx: ReportContext) -> dict:
    return pd.read_csv(ctx.out_dir / "t.csv").iloc[0].to_dict()


def test_with_several_seeds_the_interval_is_the_spread_between_seeds(tmp_path):
    index = np.arange(10)
    base = np.linspace(1, 2, 10)
    shifts = {0: -0.1, 1: -0.3, 2: -0.2}
    values = {}
    for seed, shift in shifts.items():
        values["a", seed] = {"index": index, "valid_bound": base + shift}
        values["b", seed] = {"index": index, "valid_bound": base}
    ctx = _Store(tmp_path, values)
    comparison_table(ctx, [Claim("a below b", "a", "b")], "t", "T", "nats")
    row = _row(ctx)
    se = np.std([-0.1, -0.3, -0.2], ddof=1) / math.sqrt(3)
    assert row["seeds"] == 3 and row["difference ± SE"] == f"{-0.2:+.4f} ± {se:.4f}"
    # Student's t with 2 degrees of freedom has the closed form (2p - 1) / sqrt(2p(1 - p)):
    # 4.3027 at p = 0.975. The interval -0.2 +- 4.30 x 0.0577 reaches past 0, where the
    # normal 1.96 would have called the claim confirmed from three trainings.
    q = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert row["95% interval"] == f"[{-0.2 - q * se:+.4f}, {-0.2 + q * se:+.4f}]"
    assert row["verdict"] == "not resolved at this budget" and -0.2 + 1.96 * se < 0
    for seed, shift in {0: -0.18, 1: -0.22, 2: -0.2}.items():  # seeds that agree
        values["a", seed] = {"index": index, "valid_bound": base + shift}
    comparison_table(_Store(tmp_path, values), [Claim("a below b", "a", "b")], "t", "T", "nats")
    assert _row(ctx)["verdict"] == "confirmed"


def test_an_ar_run_enters_with_its_exact_nll(tmp_path):
    index = np.arange(5)
    ctx = _Store(
        tmp_path,
        {
            ("ar", 0): {"index": index, "exact": np.full(5, 1.0)},
            ("mdm", 0): {"index": index, "valid_bound": np.full(5, 1.5), "published": np.ones(5)},
        },
    )
    comparison_table(ctx, [Claim("AR below MDM", "ar", "mdm")], "t", "T", "nats")
    assert _row(ctx)["difference ± SE"] == "-0.5000 ± 0.0000"


def test_runs_evaluated_on_different_blocks_are_not_compared(tmp_path):
    ctx = _Store(
        tmp_path,
        {
            ("a", 0): {"index": np.arange(5), "valid_bound": np.zeros(5)},
            ("b", 0): {"index": np.arange(1, 6), "valid_bound": np.ones(5)},
        },
    )
    comparison_table(ctx, [Claim("a below b", "a", "b")], "t", "T", "nats")
    assert _row(ctx)["verdict"] == "not paired: evaluated on different blocks"


def test_claims_of_variants_without_runs_are_left_out(tmp_path):
    ctx = _Store(tmp_path, {("a", 0): {"index": np.arange(5), "valid_bound": np.zeros(5)}})
    comparison_table(ctx, [Claim("a below b", "a", "b")], "t", "T", "nats")
    assert not (tmp_path / "t.csv").exists()


def test_the_toy_sweep_claim_pairs_runs_by_seed_and_takes_the_spread_between_seeds():
    from benchmarks.reports.toy2d import _sweep_claim

    def run(variant, seed, tv, se=0.004):
        cfg = SimpleNamespace(variant=variant, seed=seed)
        return cfg, {"tv_steps2": tv, "tv_steps2_se": se}

    one = [run("prime-l2-joint", 0, 0.130), run("prime-l2-independent", 0, 0.136)]
    cells, seeds = _sweep_claim(one, [2])
    assert seeds == 1  # unpaired replicates: SE = hypot(0.004, 0.004) = 0.0057
    assert cells["T=2"] == "-0.006 ± 0.006: not resolved at this budget"
    several = [run("mdm", 1, 0.2)]
    for seed, (joint, independent) in enumerate([(0.130, 0.136), (0.124, 0.132), (0.128, 0.135)]):
        several.append(run("prime-l2-joint", seed, joint))
        several.append(run("prime-l2-independent", seed, independent))
    several.append(run("prime-l2-joint", 7, 0.5))  # a seed the other variant lacks: left out
    cells, seeds = _sweep_claim(several, [2])
    # per-seed differences -0.006, -0.008, -0.007: mean -0.007, SE 0.001 / sqrt(3)
    assert seeds == 3 and cells["T=2"] == "-0.007 ± 0.001: confirmed"


def test_the_image_fid_claim_pairs_runs_by_seed_and_takes_the_spread_between_seeds():
    from benchmarks.reports.images import _fid_claim

    def row(model, seed, fid, steps=8, se=0.8):
        return {"model": model, "seed": seed, "steps": steps, "fid": fid, "se": se, "nfe": 9}

    one = [row("prime-l2", 0, 152.0), row("mdm", 0, 141.0), row("mdm", 0, 120.0, steps=32)]
    claim = _fid_claim(one, 8)
    # one seed: +11 with the half-sample SEs combined, hypot(0.8, 0.8) = 1.13
    assert claim["seeds"] == "1" and claim["difference ± SE"] == "+11.00 ± 1.13"
    assert claim["verdict"] == "refuted" and claim["NFE (Prime / MDM)"] == "9 / 9"
    assert _fid_claim(one, 32) is None  # no Prime run at 32 steps: no claim
    several = [row("prime-l2", 9, 100.0)]  # a seed MDM lacks: left out
    for seed, (prime, mdm) in enumerate([(150.0, 141.0), (139.0, 141.0), (146.0, 141.0)]):
        several += [row("prime-l2", seed, prime), row("mdm", seed, mdm)]
    claim = _fid_claim(several, 8)
    # per-seed differences +9, -2, +5: mean +4, SE = sd 5.57 / sqrt(3) = 3.21
    assert claim["seeds"] == "3" and claim["difference ± SE"] == "+4.00 ± 3.21"
    assert claim["verdict"] == "not resolved at this budget"
