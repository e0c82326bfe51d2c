"""The image tables show the sampling speed (samples/s with its device) beside NFE and
the idle-step ratio: Table 3, FID against steps, and Table 4's cells."""

from __future__ import annotations

import json

import pandas as pd

from benchmarks.config.experiments import load_experiment
from benchmarks.reports.context import ReportContext
from benchmarks.reports.ell_nfe import table4
from benchmarks.reports.images import table3, table3_nfe


def _context(tmp_path, runs: list[tuple[object, dict, dict]]) -> ReportContext:
    """(config, metrics, speed card) per run -> a context over an in-memory runs table."""
    rows, configs = [], {}
    for i, (cfg, metrics, card) in enumerate(runs):
        row = {"run_id": f"run{i}", **{f"metrics.{k}": v for k, v in metrics.items()}}
        for key in (k for k in metrics if k.startswith("perf/samples_per_s")):
            row[f"tags.card.{key}"] = json.dumps(card)
        rows.append(row)
        configs[f"run{i}"] = cfg
    return ReportContext("cpu", tmp_path, pd.DataFrame(rows), None, configs)


def _csv(tmp_path, name: str) -> list[dict[str, str]]:
    return pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False).to_dict(
        "records"
    )


def _scores(suffix: str = "", fid: float = 40.0) -> dict[str, float]:
    return {f"fid{suffix}": fid, f"fid_se{suffix}": 0.5, f"kid{suffix}": 0.01}


def test_table3_and_its_step_counts_show_samples_per_second_beside_nfe(tmp_path):
    mdm, prime = load_experiment("image-cpu").resolve("cpu")
    metrics = {
        **_scores(),
        **_scores("_steps8", 60.0),
        "test_bpd_valid_bound": 1.5,
        "sample_nfe": 29.0,
        "sample_idle_ratio": 0.0625,
        "perf/samples_per_s": 41.25,
        "sample_nfe_steps8": 9.0,
        "sample_idle_ratio_steps8": 0.0,
        "perf/samples_per_s_steps8": 150.0,
    }
    cuda = {"device": "cuda:0", "ranks": 4}
    without = {k: v for k, v in metrics.items() if not k.startswith(("perf/", "sample_idle"))}
    ctx = _context(tmp_path, [(mdm, metrics, cuda), (prime, without, {})])
    table3(ctx)
    first, second = _csv(tmp_path, "table3_images_fid")
    assert (first["NFE"], first["idle-step ratio"]) == ("29", "6.25%")
    assert first["samples/s (device)"] == "41.2 (cuda:0, 4 ranks)"
    assert (second["idle-step ratio"], second["samples/s (device)"]) == ("-", "-")
    assert "per device" in (tmp_path / "table3_images_fid.md").read_text()
    table3_nfe(ctx)
    rows = {(r["variant"], r["steps"]): r for r in _csv(tmp_path, "table3_images_nfe")}
    fast = rows["mdm", "8"]
    assert (fast["NFE"], fast["idle-step ratio"], fast["samples/s (device)"]) == (
        "9",
        "0.00%",
        "150 (cuda:0, 4 ranks)",
    )
    assert rows["prime-l2", "32"]["samples/s (device)"] == "-"


def test_table4_lists_each_cells_calls_idle_steps_and_speed(tmp_path):
    measured = {  # variant: (NFE, idle-step ratio, samples/s)
        "cifar10-l2-nfe128": (120.0, 0.05, 10.0),
        "cifar10-l1-nfe128": (70.0, 0.4, 20.0),
        "cifar10-l2-nfe512": (500.0, 0.02, 3.0),  # ell-sweep's own run
    }
    card = {"device": "cuda:0", "ranks": 1}
    runs = []
    for cfg in load_experiment("nfe-sweep").resolve("paper", variants=list(measured)):
        name = "cifar10-l2-nfe512" if cfg.upstream is None else cfg.variant
        nfe, idle, rate = measured[name]
        metrics = {"fid": 5.0, "sample_nfe": nfe, "sample_idle_ratio": idle}
        runs.append((cfg, {**metrics, "perf/samples_per_s": rate}, card))
    table4(_context(tmp_path, runs))
    rows = [
        (r["ell"], r["steps"], r["NFE (measured)"], r["idle-step ratio"], r["samples/s (device)"])
        for r in _csv(tmp_path, "table4_ell_nfe_speed")
    ]
    # sorted by ell, then steps
    assert rows == [
        ("1", "128", "70", "40.00%", "20.0 (cuda:0)"),
        ("2", "128", "120", "5.00%", "10.0 (cuda:0)"),
        ("2", "512", "500", "2.00%", "3.0 (cuda:0)"),
    ]
