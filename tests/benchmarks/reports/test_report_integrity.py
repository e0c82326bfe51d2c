"""A report says only what the store holds: it replaces the whole set of files it wrote
(and nothing else, and nothing at all if it fails half way), and runs of one variant and
seed with different settings are neither merged nor paired."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks.config import experiments
from benchmarks.reports import render
from benchmarks.reports.context import ReportContext
from benchmarks.reports.output import MANIFEST, ReportError
from tests.benchmarks.reports.report_store import (
    PROBE,
    Store,
    probe,
    probe_store,
    probe_tables,
    report,
)
from tests.helpers import tiny_toy


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    return probe_store(tmp_path, monkeypatch)


# -- a report replaces its whole output set -------------------------------------------


def _files(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()}


def test_a_report_removes_what_the_last_report_wrote_and_nothing_else(store, tmp_path):
    out = tmp_path / "results" / "cpu"
    out.mkdir(parents=True)
    (out / "README.md").write_text("findings written by hand\n")
    (tmp_path / "results" / "outside.txt").write_text("not in the results folder\n")
    store.add(probe("a", "t_a", "shared"))
    store.add(probe("b", "t_b"))
    report(tmp_path)
    tables = {f"{t}.{ext}" for t in ("t_a", "t_b", "shared") for ext in ("md", "tex", "csv")}
    assert _files(out) == tables | {"index.md", "README.md", MANIFEST}
    listed = (out / MANIFEST).read_text().splitlines()
    assert set(listed[1:]) == tables | {"index.md"} and listed[0].startswith("#")
    # A hostile list names files outside the folder: they stay.
    (out / MANIFEST).write_text((out / MANIFEST).read_text() + "../outside.txt\n.\n")
    store.rows.pop()  # run b is gone from the store; a writes t_a only now
    store.files["mlflow00", "config.json"] = json.dumps(probe("a", "t_a")).encode()
    report(tmp_path)
    tables = {f"t_a.{ext}" for ext in ("md", "tex", "csv")}
    assert _files(out) == tables | {"index.md", "README.md", MANIFEST}
    assert (out / "README.md").read_text() == "findings written by hand\n"
    assert (tmp_path / "results" / "outside.txt").is_file()
    assert "t_b" not in (out / "index.md").read_text()


def test_a_failed_report_leaves_the_previous_one_whole(store, tmp_path, monkeypatch):
    store.add(probe("a", "t_a"))
    out = report(tmp_path)
    before = {name: (out / name).read_bytes() for name in _files(out)}

    def half_way(ctx: ReportContext) -> None:
        probe_tables(ctx)
        raise KeyboardInterrupt

    monkeypatch.setitem(render.RENDERERS, PROBE, [half_way])
    store.files["mlflow00", "config.json"] = json.dumps(probe("a", "t_new")).encode()
    with pytest.raises(KeyboardInterrupt):
        report(tmp_path)
    assert {name: (out / name).read_bytes() for name in _files(out)} == before


def test_without_a_list_the_old_index_names_the_reports_own_files(store, tmp_path):
    out = tmp_path / "results" / "cpu"
    out.mkdir(parents=True)
    old = "# primebench results, scale `cpu`\n\n- [Old](old.md)\n- [fig](old_figure.png)\n"
    (out / "README.md").write_text(old)
    for name in ("old.md", "old.tex", "old.csv", "old_figure.png", "mine.png"):
        (out / name).write_text("x")
    store.add(probe("a", "t_a"))
    report(tmp_path)
    # mine.png: never linked from a report's index, so not a report's file
    tables = {f"t_a.{e}" for e in ("md", "tex", "csv")}
    # the old index, README.md, was a report's own: the new one is index.md
    assert _files(out) == tables | {"index.md", "mine.png", MANIFEST}


def test_a_file_no_report_wrote_is_never_replaced(store, tmp_path):
    out = tmp_path / "results" / "cpu"
    out.mkdir(parents=True)
    (out / "index.md").write_text("# Index\n\nwritten by hand\n")
    store.add(probe("a", "t_a"))
    with pytest.raises(ReportError, match=r"would replace index\.md, which no report wrote"):
        report(tmp_path)
    assert _files(out) == {"index.md"}  # nothing moved in, nothing left behind
    assert (out / "index.md").read_text() == "# Index\n\nwritten by hand\n"


# -- runs of one variant and seed with different settings ----------------------------


def _toy_metrics(value: float) -> dict:
    names = ["entropy", "invalid_sample_rate", "sample_tv", "sample_tv_exact_draws", "tv_floor"]
    names += ["tv_floor_se"]
    for key in ("nll_published", "nll_valid_bound", "nll_published_gap", "nll_valid_bound_gap"):
        names += [key, f"{key}_se"]
    for t in (1, 2):
        names += [f"tv_steps{t}", f"tv_steps{t}_se", f"invalid_steps{t}", f"invalid_steps{t}_se"]
    return dict.fromkeys(names, value)


def test_runs_sharing_a_variant_and_seed_are_neither_merged_nor_paired(
    store, tmp_path, monkeypatch
):
    from benchmarks.reports import toy2d

    keep = [toy2d.figure4_table, toy2d.figure4_paired, toy2d.figure4_steps_table]
    monkeypatch.setitem(render.RENDERERS, "toy2d", keep)
    configs = tiny_toy() + tiny_toy(["mdm"], {"train": {"lr": 0.0123}})
    index = np.arange(6)
    bounds = {"mdm": 2.0, "prime-l2-joint": 1.0, "prime-l2-independent": 1.5}
    for i, cfg in enumerate(configs):
        values = np.linspace(0.0, 1.0, 6) * (1 + i) + bounds[cfg.variant]
        per_block = {"index": index, "valid_bound": values, "published": values}
        store.add(cfg.to_dict(), _toy_metrics(0.1), per_block_nll=per_block)
    out = report(tmp_path)
    first, second = configs[0], configs[-1]
    assert first.variant == second.variant == "mdm" and first.run_id != second.run_id
    rows = pd.read_csv(out / "figure4_toy2d.csv")["variant"].tolist()
    assert len(rows) == 4 and len(set(rows)) == 4
    for cfg in (first, second):
        (row,) = [r for r in rows if cfg.run_id in r]
        assert row.startswith("mdm (run ") and f"train.lr={cfg.train.lr}" in row
    paired = pd.read_csv(out / "figure4_toy2d_paired.csv").set_index("claim")
    refused = "not paired: 2 runs of mdm at seed 0, of different settings"
    for claim in ("Prime l=2 joint below MDM", "Prime l=2 independent below MDM"):
        assert paired.loc[claim, "verdict"].startswith(refused)
    # The pair without a second run is compared: joint (1.0 + 2x) - independent (1.5 + 3x)
    # per block x in linspace(0, 1, 6) has the mean -0.5 - 0.5 = -1.0.
    joint = paired.loc["Prime l=2 joint below Prime l=2 independent"]
    assert joint["difference ± SE"].startswith("-1.0000 ± ") and joint["verdict"] == "confirmed"
    section = (out / "index.md").read_text().split("different settings")[1]
    assert first.run_id in section and second.run_id in section and "toy2d / mdm" in section


def test_pairing_helpers_refuse_a_seed_with_two_runs():
    from benchmarks.reports.images import _fid_claim
    from benchmarks.reports.toy2d import _sweep_claim

    def run(variant, tv):
        return SimpleNamespace(variant=variant, seed=0), {"tv_steps2": tv, "tv_steps2_se": 0.01}

    twice = [run("prime-l2-joint", 0.1), run("prime-l2-joint", 0.3)]
    twice.append(run("prime-l2-independent", 0.2))
    cells, seeds = _sweep_claim(twice, [2])
    assert seeds == 0 and cells["T=2"].startswith("not paired: 2 runs of prime-l2-joint at seed 0")
    rows = [
        {"model": m, "seed": 0, "steps": 8, "fid": f, "se": 1.0, "nfe": 9}
        for m, f in (("prime-l2", 10.0), ("mdm", 12.0), ("mdm", 30.0))
    ]
    claim = _fid_claim(rows, 8)
    assert claim["verdict"].startswith("not paired: 2 runs of mdm at seed 0")
    assert claim["difference ± SE"] == "-"


def test_table4_shows_every_run_of_a_cell(tmp_path):
    from benchmarks.reports.ell_nfe import table4

    exp = experiments.load_experiment("nfe-sweep")
    cfg = exp.resolve("cpu", None, ["cifar10-l2-nfe128"])[0]
    other = exp.resolve("cpu", {"seed": 5}, ["cifar10-l2-nfe128"])[0]
    configs = {"r0": cfg, "r1": other}
    runs = pd.DataFrame({"run_id": ["r0", "r1"], "metrics.fid": [40.0, 50.0]})
    table4(ReportContext("cpu", tmp_path, runs, None, configs))
    row = pd.read_csv(tmp_path / "table4_ell_nfe.csv").iloc[0]
    assert row["NFE 128"].startswith("40.00 / 50.00 (paper ")
    assert "several runs" in (tmp_path / "table4_ell_nfe.md").read_text()
