"""The idle-step ratio column of Table 1 and Figure 1 (idle steps per sequence)."""

from __future__ import annotations

import pandas as pd

from .context import ReportContext

__all__ = ["table1_isr", "figure1_counts", "figure1"]


def _frame(ctx: ReportContext) -> pd.DataFrame:
    """One row per (run, T): simulated mean, its SE and the closed form."""
    rows = []
    for run, cfg in ctx.rows():
        p = cfg.task.params
        hist = {
            key: ctx.metric_history(run["run_id"], key)
            for key in ("idle_steps", "idle_steps_se", "idle_steps_closed_form")
        }
        for step, value in hist["idle_steps"].items():
            rows.append(
                {
                    "ell": p.ell,
                    "T": step,
                    "L": p.seq_len,
                    "runs": p.runs,
                    "simulated": value,
                    "se": hist["idle_steps_se"][step],
                    "closed_form": hist["idle_steps_closed_form"][step],
                }
            )
    return pd.DataFrame(rows).sort_values(["ell", "T"]) if rows else pd.DataFrame()


def table1_isr(ctx: ReportContext) -> None:
    df = _frame(ctx)
    if df.empty:
        return
    paper = ctx.paper("isr").set_index("ell")["isr_percent"]
    at = df[(df["T"] == 1024) & (df["L"] == 1024)]
    if at.empty:
        return
    table = pd.DataFrame(
        {
            "ell": at["ell"].to_numpy(),
            "model": ["MDLM" if e == 1 else f"MDLM-Prime l={e}" for e in at["ell"]],
            "paper ISR": [f"{paper[e]:.2f}%" if e in paper.index else "-" for e in at["ell"]],
            "closed form": [f"{100 * v / 1024:.2f}%" for v in at["closed_form"]],
            "simulated": [
                f"{100 * v / 1024:.2f}% ± {100 * s / 1024:.2f}"
                for v, s in zip(at["simulated"], at["se"], strict=True)
            ],
            "z": [
                f"{(v - c) / s:+.2f}"
                for v, c, s in zip(at["simulated"], at["closed_form"], at["se"], strict=True)
            ],
        }
    )
    ctx.write_table(
        table,
        "table1_isr",
        "Idle-step ratio at L = T = 1024 (Table 1, ISR column)",
        notes=[
            f"simulated: mean of {int(at['runs'].iloc[0])} sampler runs with a constant "
            "network ± standard error (bounded from the closed-form variance); "
            "closed form: sum_k (1 - delta_alpha_k)^(L ell) / T, linear schedule.",
        ],
    )


def figure1_counts(ctx: ReportContext) -> None:
    df = _frame(ctx)
    if df.empty:
        return
    wide = df.assign(
        cell=[f"{s:.1f} ({c:.1f})" for s, c in zip(df["simulated"], df["closed_form"], strict=True)]
    ).pivot(index="T", columns="ell", values="cell")
    wide.columns = [f"l={e}" for e in wide.columns]
    ctx.write_table(
        wide.reset_index(),
        "figure1_idle_counts",
        "Idle steps per sequence: simulated (closed form), L = 1024 (Figure 1 data)",
    )


def figure1(ctx: ReportContext) -> None:
    import matplotlib.pyplot as plt

    df = _frame(ctx)
    if df.empty:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for ell, group in df.groupby("ell"):
        label = "MDM" if ell == 1 else f"MDM-Prime l={ell}"
        line = ax.plot(group["T"], group["closed_form"], "-", label=label)[0]
        ax.errorbar(
            group["T"],
            group["simulated"],
            yerr=2 * group["se"],
            fmt="o",
            ms=4,
            color=line.get_color(),
            capsize=2,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sampling steps T")
    ax.set_ylabel("idle steps per sequence")
    ax.set_title("Idle steps, L = 1024 (lines: closed form; dots: simulated ± 2 SE)")
    ax.grid(alpha=0.3)
    ax.legend()
    ctx.save_figure(fig, "figure1_idle_steps")
