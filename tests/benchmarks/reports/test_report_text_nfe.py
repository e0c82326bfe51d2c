"""The text NFE sweep's report (table, figure, gen PPL at equal steps), the float32 /
float64 comparison's verdicts (computed from the numbers, both directions), and the
experiment file that runs them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.config.experiments import load_experiment, upstream_config
from benchmarks.reports.text_dtype import _key, dtype_verdict
from tests.benchmarks.reports.report_store import probe_store, report
from tests.benchmarks.reports.text_report_store import add, quality, sampled, trained


def _rows(out, name: str, key: str) -> dict[str, dict[str, str]]:
    df = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
    return {row[key]: row for row in df.to_dict("records")}


def test_the_sweep_writes_its_table_and_figure_and_leaves_table1_its_own_rows(
    tmp_path, monkeypatch
):
    store = probe_store(tmp_path, monkeypatch)
    add(store, trained("mdlm"), quality(41.0, 4.1))  # Table 1's row, not the sweep's
    for steps, (mdlm, prime) in {16: (80.0, 70.0), 64: (50.0, 45.0), 256: (41.0, 39.0)}.items():
        add(store, sampled("mdlm", steps), quality(mdlm, 4.0, nfe=steps / 2, rate=8.0))
        add(store, sampled("prime-l2", steps), quality(prime, 4.1, nfe=steps, rate=6.0))
    add(store, sampled("ar", 256, name="ar-samples"), quality(30.0, 4.3, nfe=255, rate=1.5))
    out = report(tmp_path)
    assert set(_rows(out, "table1_text_ppl", "model")) == {"MDLM"}
    sweep = pd.read_csv(out / "text_nfe_sweep.csv", dtype=str, keep_default_na=False)
    assert len(sweep) == 7 and "sampling dtype" not in sweep.columns  # one dtype here
    by_run = {row["run"]: row for row in sweep.to_dict("records")}
    ar = by_run["ar-samples"]
    assert (ar["model"], ar["steps"], ar["NFE"], ar["gen PPL"]) == ("AR", "-", "255", "30.00")
    prime = by_run["prime-l2-steps64-float64"]
    assert (prime["model"], prime["trained run"]) == ("MDLM-Prime l=2", "table1-cpu/prime-l2")
    assert (prime["steps"], prime["NFE"], prime["samples/s (device)"]) == ("64", "64", "6.0 (cpu)")
    assert (out / "text_nfe_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (out / "index.md").read_text()
    assert "(text_nfe_sweep.md)" in index and "(text_nfe_sweep.png)" in index
    claims = _rows(out, "text_nfe_gen_ppl_paired", "claim")
    assert set(claims) == {f"MDLM-Prime l=2 gen PPL below MDLM at {t} steps" for t in (16, 64, 256)}
    at64 = claims["MDLM-Prime l=2 gen PPL below MDLM at 64 steps"]
    assert at64["NFE (first / second)"] == "64 / 32" and at64["gen PPL (first / second)"] == (
        "45.00 / 50.00"
    )
    assert at64["verdict"] == "no verdict: no SE"  # one seed, no per-sample values


def test_a_sweep_of_one_step_count_is_no_sweep(tmp_path, monkeypatch):
    store = probe_store(tmp_path, monkeypatch)
    add(store, sampled("mdlm", 64), quality(50.0, 4.0))
    add(store, sampled("prime-l2", 64), quality(45.0, 4.1))
    assert not (report(tmp_path) / "text_nfe_sweep.md").exists()


def _per_sample(nll_rate: float, entropy: float, noise: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)  # one stream: the pairs share their samples' noise
    tokens = rng.integers(100, 200, 8)
    shared = rng.normal(0, 0.05, 8)
    return {
        "nll_sum": tokens * (nll_rate + shared + rng.normal(0, noise, 8)),
        "tokens": tokens,
        "entropy": entropy + shared + rng.normal(0, noise, 8),
    }


def test_the_float32_verdict_follows_the_numbers_in_both_directions(tmp_path, monkeypatch):
    store = probe_store(tmp_path, monkeypatch)
    # MDLM at 256 steps: float32 lower in both (the known direction), no per-sample values
    add(store, sampled("mdlm", 256, "float32"), quality(30.0, 4.0))
    add(store, sampled("mdlm", 256, "float64"), quality(35.0, 4.2))
    # Prime at 256 steps: float32 higher in both
    add(store, sampled("prime-l2", 256, "float32"), quality(40.0, 4.5))
    add(store, sampled("prime-l2", 256, "float64"), quality(38.0, 4.4))
    # MDLM at 32 steps, per-sample values: lower by 0.2 with noise 0.01 per sample
    for dtype, rate, entropy in (("float32", 3.0, 4.0), ("float64", 3.2, 4.2)):
        per = _per_sample(rate, entropy, 0.01)
        add(store, sampled("mdlm", 32, dtype), quality(np.exp(rate), entropy), per_sample=per)
    # Prime at 32 steps, per-sample values: a difference of 0.001 in noise of 0.05
    for dtype, rate in (("float32", 3.100), ("float64", 3.101)):
        per = _per_sample(rate, 4.0, 0.05)
        add(store, sampled("prime-l2", 32, dtype), quality(np.exp(rate), 4.0), per_sample=per)
    out = report(tmp_path)
    rows = _rows(out, "text_sampling_dtype", "run (float32)")
    mdlm = rows["mdlm-steps256-float32"]
    assert mdlm["verdict"] == (
        "shows in direction: float32 lower in entropy and gen PPL; not tested against the "
        "samples' noise (no per-sample values stored)"
    )
    assert mdlm["entropy (float32 / float64)"] == "4.000 / 4.200"
    assert mdlm["entropy difference (nats)"] == "-0.2000"
    assert mdlm["gen PPL difference (log ratio)"] == f"{np.log(30 / 35):+.4f}"
    prime = rows["prime-l2-steps256-float32"]
    assert prime["verdict"] == "does not show: float32 higher in entropy and gen PPL"
    tested = rows["mdlm-steps32-float32"]
    assert (
        tested["verdict"] == "shows: float32 lower in entropy and gen PPL, beyond the 95% interval"
    )
    assert " ± " in tested["entropy difference (nats)"]
    assert rows["prime-l2-steps32-float32"]["verdict"] == "not resolved at this budget"
    notes = (out / "text_sampling_dtype.md").read_text()
    assert "the effect shows in 2 of 4 pairs and does not show in 1" in notes


@pytest.mark.parametrize(
    "diffs, expected",
    [
        ({"entropy": (-0.1, None), "gen PPL": (0.0, None)}, "does not show: float32 equal in"),
        ({"entropy": (-0.1, 0.01), "gen PPL": (-0.1, 0.1)}, "not resolved at this budget"),
        ({"entropy": (-0.1, 0.01)}, "shows: float32 lower in entropy, beyond"),
        ({}, "no entropy or gen PPL logged by both runs"),
    ],
)
def test_the_float32_verdict_reads_each_metric(diffs, expected):
    assert dtype_verdict(diffs).startswith(expected)


def test_the_experiment_samples_table1_cpu_checkpoints_with_the_suite_judge():
    exp = load_experiment("text-nfe-sweep")
    configs = {c.variant: c for c in exp.resolve("cpu")}
    steps: dict[str, set[int]] = {}
    for config in configs.values():
        p, trained_run = config.task.params, upstream_config(config)
        t = trained_run.task.params
        # the checkpoint reads the blocks it was trained on (text-lm checks no upstream)
        same = ("dataset", "tokenizer", "block_size", "block_specials", "validation_docs")
        assert all(getattr(p, f) == getattr(t, f) for f in same), config.variant
        assert config.seed == trained_run.seed and config.model is None
        # the trained run's judge settings and sampler batch (so its NFE per call)
        same = ("judge", "judge_batch", "judge_group", "mauve_references", "sample_batch")
        assert all(getattr(p, f) == getattr(t, f) for f in same), config.variant
        assert p.judge_run == ("text-judge", "ar-judge")
        if p.sampling_dtype == "float64" and trained_run.model.name != "ar":
            steps.setdefault(trained_run.variant, set()).add(p.sample_steps)
    assert steps == {
        v: {16, 32, 64, 128, 256} for v in ("mdlm", "bd3lm-l4", "prime-l2", "prime-l4")
    }
    assert [v for v, c in configs.items() if upstream_config(c).model.name == "ar"] == [
        "ar-samples"
    ]
    judge = load_experiment("text-judge").resolve("cpu", variants=["ar-judge"])[0]
    assert judge.model.name == "ar"
    # every float32 run has a float64 twin: settings equal but the dtype (the report's key)
    keys = {_key(c) for c in configs.values() if c.task.params.sampling_dtype == "float64"}
    float32 = [c for c in configs.values() if c.task.params.sampling_dtype == "float32"]
    assert len(float32) == 4 and all(_key(c) in keys for c in float32)
    # a reproduction leaves out ell = 4, whose checkpoint table1-cpu trains on request
    assert set(configs) - set(exp.reproduced("cpu")) == {
        f"prime-l4-steps{t}" for t in (16, 32, 64, 128, 256)
    }
