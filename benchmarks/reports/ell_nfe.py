"""Table 4: FID across ell and the sampler's NFE, beside the paper's values, and each
cell's measured NFE, idle steps and sampling speed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..config.experiments import upstream_config
from .context import ReportContext
from .images import _ell, _idle_cell, _metrics
from .speed import SPEED_NOTE, samples_per_s

__all__ = ["table4"]


def table4(ctx: ReportContext) -> None:
    """FID of each trained model at each sampler step count: the checkpoint evaluations,
    and a trained run's own evaluation where a cell is that run (nfe-sweep's NFE-512 cells
    are ell-sweep's runs); only where there are checkpoint evaluations."""
    if not any(cfg.upstream is not None for _, cfg in ctx.rows()):
        return
    rows = []
    for run, cfg in ctx.rows():
        p, trained = cfg.task.params, upstream_config(cfg) if cfg.upstream else cfg
        if trained.model.name == "mdm-mixture":  # not a row of the ell x NFE table
            continue
        rows.append(
            {
                "dataset": p.dataset,
                "ell": _ell(trained),
                "NFE": p.sample_steps,
                "fid": float(run["metrics.fid"]),
                "samples": p.sample_count,
                "run": ctx.run_name(cfg),
                "measured": run.get("metrics.sample_nfe"),
                "idle": _idle_cell(_metrics(run)),
                "speed": samples_per_s(run),
            }
        )
    if not rows:
        return
    ours = pd.DataFrame(rows)
    paper = ctx.paper("table4_ell_nfe_fid")
    paper = paper[paper["ell"].astype(str).str.isdigit()].assign(ell=lambda d: d["ell"].astype(int))
    merged = ours.merge(
        paper[["dataset", "ell", "nfe", "fid"]].rename(columns={"nfe": "NFE", "fid": "paper"}),
        on=["dataset", "ell", "NFE"],
        how="left",
    )
    # A cell of several runs (seeds, or runs of other settings) shows every run's FID, in
    # variant and seed order: none stands for the others.
    merged["ours"] = [f"{f:.2f}" for f in merged["fid"]]
    cells = (
        merged.groupby(["dataset", "ell", "NFE"], sort=True)
        .agg(ours=("ours", " / ".join), paper=("paper", "first"), runs=("ours", "size"))
        .reset_index()
    )
    cells["cell"] = [
        f"{o} (paper {pf:.2f})" if not math.isnan(pf) else f"{o} (paper -)"
        for o, pf in zip(cells["ours"], cells["paper"], strict=True)
    ]
    table = cells.pivot_table(
        index=["dataset", "ell"], columns="NFE", values="cell", aggfunc="first"
    ).reset_index()
    table.columns = [f"NFE {c}" if isinstance(c, int | np.integer) else c for c in table.columns]
    ctx.write_table(
        table,
        "table4_ell_nfe",
        "FID across ell and NFE (Table 4)",
        notes=[
            f"FID (torch-fidelity) of {int(ours['samples'].iloc[0])} samples per cell; "
            "the paper's values use 50,000 samples and per-row tuned sampler settings.",
            *(
                ["A cell with several values holds several runs (seeds, or other settings)."]
                if (cells["runs"] > 1).any()
                else []
            ),
        ],
    )
    _speed(ctx, ours)


def _speed(ctx: ReportContext, ours: pd.DataFrame) -> None:
    """Each cell's run: the steps, the network calls it measured, idle steps, samples/s."""
    ours = ours.sort_values(["dataset", "ell", "NFE"], kind="stable")
    table = pd.DataFrame(
        {
            "dataset": ours["dataset"],
            "ell": ours["ell"],
            "run": ours["run"],
            "steps": ours["NFE"],
            "NFE (measured)": ["-" if pd.isna(v) else f"{v:.0f}" for v in ours["measured"]],
            "idle-step ratio": ours["idle"],
            "samples/s (device)": ours["speed"],
        }
    )
    ctx.write_table(
        table,
        "table4_ell_nfe_speed",
        "Table 4's cells: network calls, idle steps and sampling speed",
        notes=[
            "steps: the sampler's T (Table 4's NFE column); NFE (measured): the network "
            "calls per sampler call (an idle step reuses the cached prediction).",
            SPEED_NOTE,
        ],
    )
