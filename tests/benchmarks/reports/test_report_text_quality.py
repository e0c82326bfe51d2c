"""Table 1's sample columns (gen PPL, entropy, MAUVE, samples/s, tokens/s) with the judge
named from the metric cards, and its orderings in gen PPL with their standard errors."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks.core import ConfigError
from benchmarks.reports import text_quality
from benchmarks.reports.gen_ppl_paired import log_ppl_difference, log_ppl_influence
from tests.benchmarks.reports.report_store import probe_store, report
from tests.benchmarks.reports.text_report_store import PAPER_JUDGE, add, quality, sampled, trained


def _table(out, name: str) -> dict[str, dict[str, str]]:
    """The rendered CSV as {first column: row}, every cell as written."""
    df = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
    return {row[df.columns[0]]: row for row in df.to_dict("records")}


def _unknown(*args):
    raise ConfigError(f"unknown experiment {args[0]!r}; valid: table1-cpu")


def test_table1_shows_the_sample_columns_and_names_the_suite_judge(tmp_path, monkeypatch):
    monkeypatch.setattr(text_quality, "resolve_variant", _unknown)
    store = probe_store(tmp_path, monkeypatch)
    add(store, trained("mdlm"), quality(41.237, 4.1234, nfe=120, rate=3.2))
    add(store, trained("prime-l2"), {**quality(38.5, 4.2, rate=250.0), "sample_mauve": 0.5})
    exact = {"val_nll_exact": 1.2, "val_nll_exact_se": 0.01}
    add(store, trained("ar"), exact, judge=None)  # no samples scored
    add(store, sampled("mdlm", 16), quality(60.0, 3.9))  # a sweep run: not a Table 1 row
    out = report(tmp_path)
    rows = _table(out, "table1_text_ppl")
    assert set(rows) == {"AR", "MDLM", "MDLM-Prime l=2"}
    mdlm, prime, ar = rows["MDLM"], rows["MDLM-Prime l=2"], rows["AR"]
    assert (mdlm["gen PPL"], mdlm["entropy (nats)"], mdlm["NFE"]) == ("41.24", "4.123", "120")
    # tokens/s = samples/s x L = 3.2 x 256 = 819.2; 250 samples/s x 256 = 64,000
    assert (mdlm["samples/s (device)"], mdlm["tokens/s"]) == ("3.2 (cpu)", "819")
    assert (prime["samples/s (device)"], prime["tokens/s"]) == ("250 (cpu)", "64,000")
    assert (mdlm["MAUVE"], prime["MAUVE"]) == ("-", "0.500")
    assert (ar["gen PPL"], ar["entropy (nats)"], ar["samples/s (device)"]) == ("-", "-", "-")
    notes = (out / "table1_text_ppl.md").read_text()
    assert f"Samples per row: {trained('mdlm')['task']['sample_count']}, sampling dtype " in notes
    assert "run:text-judge/ar-judge" in notes and "the suite's own AR model" in notes
    assert "trained longer than Table 1's AR row" in notes and "not GPT-2 Large" in notes
    # the judge's experiment is not in this installation: said, and no steps are made up
    assert "unknown experiment 'text-judge' here, so its steps are not shown" in notes


def test_the_judge_run_is_not_a_table1_row(tmp_path, monkeypatch):
    store = probe_store(tmp_path, monkeypatch)
    judge = {**trained("ar", seed=1), "experiment": "text-judge", "variant": "ar-judge"}
    judge["task"]["judge"] = None
    judge["train"]["steps"] = 2000
    add(store, judge, {"val_nll_exact": 1.0, "val_nll_exact_se": 0.01}, judge=None)
    add(store, trained("ar"), {"val_nll_exact": 1.2, "val_nll_exact_se": 0.01}, judge=None)
    add(store, trained("mdlm"), quality(41.0, 4.1))
    out = report(tmp_path)
    assert set(_table(out, "table1_text_ppl")) == {"AR", "MDLM"}  # one AR row: the table's
    notes = (out / "table1_text_ppl.md").read_text()
    assert "trained longer than Table 1's AR row (2,000 steps against 500)" in notes


def test_the_mauve_column_appears_only_when_a_run_has_mauve(tmp_path, monkeypatch):
    store = probe_store(tmp_path, monkeypatch)
    add(store, trained("mdlm"), quality(41.0, 4.1))
    out = report(tmp_path)
    assert "MAUVE" not in next(iter(_table(out, "table1_text_ppl").values()))


def test_the_judge_run_is_read_for_its_steps_and_several_judges_are_told_apart(
    tmp_path, monkeypatch
):
    judge_run = SimpleNamespace(train=SimpleNamespace(steps=5000))
    asked = []
    monkeypatch.setattr(
        text_quality, "resolve_variant", lambda *a: asked.append(a[:2] + a[3:]) or judge_run
    )
    store = probe_store(tmp_path, monkeypatch)
    add(store, trained("ar"), quality(30.0, 4.3))
    add(store, trained("mdlm"), quality(41.0, 4.1))
    add(store, trained("prime-l2"), quality(90.0, 5.1), judge=PAPER_JUDGE)
    out = report(tmp_path)
    rows = _table(out, "table1_text_ppl")
    assert rows["MDLM"]["gen PPL"] == "41.00 [j1]" and rows["MDLM-Prime l=2"]["gen PPL"] == (
        "90.00 [j2]"
    )
    notes = (out / "table1_text_ppl.md").read_text()
    assert asked == [("text-judge", "cpu", "ar-judge", 1)]
    # table1-cpu's AR row trains 500 steps
    assert "[j1] gen PPL judge: suite AR model" in notes
    assert "trained longer than Table 1's AR row (5,000 steps against 500)" in notes
    assert f"[j2] gen PPL judge (from the metric cards): {PAPER_JUDGE[0]}." in notes
    claims = _table(out, "table1_text_gen_ppl_paired")
    assert claims["gen PPL: MDLM-Prime l=2 below MDLM"]["verdict"] == (
        "not compared: judged by different judges"
    )


def test_log_gen_ppl_difference_is_exact_for_a_constant_per_token_nll():
    tokens = np.array([10, 30, 25, 7, 64])
    a = {"nll_sum": 2.5 * tokens, "tokens": tokens}
    b = {"nll_sum": 3.0 * tokens[::-1], "tokens": tokens[::-1]}
    for paired in (True, False):
        assert log_ppl_difference(a, b, paired) == pytest.approx((-0.5, 0.0))


def test_with_equal_lengths_the_standard_error_is_that_of_a_mean():
    rng = np.random.default_rng(1)
    t = np.full(40, 50)
    na, nb = rng.normal(150, 10, 40), rng.normal(160, 10, 40)
    a, b = {"nll_sum": na, "tokens": t}, {"nll_sum": nb, "tokens": t}
    d = na / 50 - nb / 50
    assert log_ppl_difference(a, b, True) == pytest.approx(
        (d.mean(), d.std(ddof=1) / math.sqrt(40))
    )
    unpaired = math.sqrt((na / 50).var(ddof=1) / 40 + (nb / 50).var(ddof=1) / 40)
    assert log_ppl_difference(a, b, False) == pytest.approx((d.mean(), unpaired))


def test_the_delta_method_matches_the_spread_of_the_ratio_over_repeated_draws():
    # Samples of random lengths and per-token NLLs: the SE one set of N samples gives
    # should match the standard deviation of R = sum n / sum t over 4000 such sets.
    rng = np.random.default_rng(0)
    n_sets, n = 4000, 64
    t = rng.integers(20, 200, size=(n_sets, n)).astype(float)
    nll = t * rng.normal(3.0, 0.4, size=(n_sets, n)) + rng.normal(0, 5, size=(n_sets, n))
    ratios = nll.sum(1) / t.sum(1)
    ses = [log_ppl_influence(a, b)[1].std(ddof=1) for a, b in zip(nll, t, strict=True)]
    assert np.mean(ses) / math.sqrt(n) == pytest.approx(ratios.std(ddof=1), rel=0.05)


def _per_sample(rate: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(100, 200, 8)
    return {"nll_sum": tokens * (rate + rng.normal(0, 0.01, 8)), "tokens": tokens}


def test_table1_orders_gen_ppl_with_a_standard_error_only_where_one_is_computable(
    tmp_path, monkeypatch
):
    store = probe_store(tmp_path, monkeypatch)
    # Prime l=2 and MDLM with per-sample judge NLLs (3.0 against 3.3 nats per token):
    add(store, trained("mdlm"), quality(math.exp(3.3), 4.1), per_sample=_per_sample(3.3, 0))
    add(store, trained("prime-l2"), quality(math.exp(3.0), 4.1), per_sample=_per_sample(3.0, 1))
    # AR without: the point difference and no verdict
    add(store, trained("ar"), quality(math.exp(2.9), 4.2))
    out = report(tmp_path)
    claims = _table(out, "table1_text_gen_ppl_paired")
    prime = claims["gen PPL: MDLM-Prime l=2 below MDLM"]
    assert prime["verdict"] == "confirmed" and prime["steps"] == "256"
    assert prime["standard error"] == "samples, paired (N = 8)"
    d = float(prime["log gen PPL difference ± SE"].split(" ± ")[0])
    assert d == pytest.approx(-0.3, abs=0.02)
    ar = claims["gen PPL: AR below MDLM"]
    assert ar["log gen PPL difference ± SE"] == f"{2.9 - 3.3:+.4f}"
    assert ar["verdict"] == "no verdict: no SE" and ar["steps"] == "256"
    assert "none: no per-sample values stored" in ar["standard error"]


def test_several_training_seeds_give_the_verdict_from_their_spread(tmp_path, monkeypatch):
    store = probe_store(tmp_path, monkeypatch)
    # per-seed log differences -0.10, -0.12, -0.08: mean -0.10, SE 0.02 / sqrt(3)
    for seed, (prime, mdlm) in enumerate([(3.0, 3.10), (3.0, 3.12), (3.1, 3.18)], start=1):
        add(store, trained("mdlm", seed), quality(math.exp(mdlm), 4.1))
        add(store, trained("prime-l2", seed), quality(math.exp(prime), 4.1))
    out = report(tmp_path)
    row = _table(out, "table1_text_gen_ppl_paired")["gen PPL: MDLM-Prime l=2 below MDLM"]
    se = 0.02 / math.sqrt(3)
    assert row["seeds"] == "3" and row["standard error"] == "spread of 3 training seeds"
    assert row["log gen PPL difference ± SE"] == f"{-0.10:+.4f} ± {se:.4f}"
    # Student's t, 2 degrees of freedom: 4.30 SE = 0.0497 < 0.10: confirmed
    assert row["verdict"] == "confirmed"
