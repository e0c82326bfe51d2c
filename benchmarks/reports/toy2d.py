"""Figure 4 (2-D toy): the likelihood audit table and the sample histograms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..config.run_config import RunConfig
from ..tasks.toy2d import TARGET_SOURCE, target_pmf
from .context import ReportContext
from .paired import (
    AmbiguousPairing,
    Claim,
    combine_seeds,
    comparison_table,
    seed_pairs,
    verdict,
)

__all__ = [
    "figure4_table",
    "figure4_paired",
    "figure4_samples",
    "figure4_steps_table",
    "figure4_steps",
    "TOY_CLAIMS",
]

TOY_CLAIMS = [
    Claim("Prime l=2 joint below MDM", "prime-l2-joint", "mdm"),
    Claim("Prime l=2 independent below MDM", "prime-l2-independent", "mdm"),
    Claim("Prime l=2 joint below Prime l=2 independent", "prime-l2-joint", "prime-l2-independent"),
]


def _metrics(run: pd.Series) -> dict[str, float]:
    return {k[len("metrics.") :]: v for k, v in run.items() if k.startswith("metrics.")}


def _model_columns(cfg: RunConfig) -> dict[str, object]:
    p = cfg.model.params
    return {
        "model": cfg.model.name,
        "ell": getattr(p, "ell", 1),
        "decoder": getattr(p, "decoder", "joint (SUBS)"),
        "trained on": getattr(p, "objective", "valid"),
    }


def _training(cfg: RunConfig) -> str:
    masking = getattr(cfg.model.params, "masking", "independent").replace("_", "-")
    return (
        f"{cfg.train.steps} steps x {cfg.train.global_batch_size} draws, lr {cfg.train.lr:g}, "
        f"{masking} masking"
    )


def figure4_table(ctx: ReportContext) -> None:
    rows = []
    for run, cfg in ctx.rows():
        m = _metrics(run)

        def pm(name: str, m: dict = m, sign: str = "") -> str:
            return f"{m[name]:{sign}.4f} ± {m[name + '_se']:.4f}"

        rows.append(
            {
                "variant": ctx.run_name(cfg),
                **_model_columns(cfg),
                "entropy": f"{m['entropy']:.4f}",
                "published estimator": pm("nll_published"),
                "valid bound": pm("nll_valid_bound"),
                "published - NLL": pm("nll_published_gap", sign="+"),
                "valid - NLL": pm("nll_valid_bound_gap", sign="+"),
                "invalid samples": f"{100 * m['invalid_sample_rate']:.2f}%",
                "TV (exact-draw floor)": f"{m['sample_tv']:.3f} ({m['sample_tv_exact_draws']:.3f})",
                "training": _training(cfg),
            }
        )
    if not rows:
        return
    _, first = next(iter(ctx.rows()))
    t = first.task.params
    ctx.write_table(
        pd.DataFrame(rows),
        "figure4_toy2d",
        "2-D toy: likelihood audit and sample quality (Figure 4)",
        notes=[
            "Target: " + TARGET_SOURCE.format(r=t.resolution, gamma=t.gamma) + ".",
            "All likelihoods in nats per sample (2 coordinates), mean ± standard error over "
            f"{t.eval_samples} target samples x {t.eval_passes} stratified time draws, EMA "
            "weights. '- NLL' columns: mean of (estimate - exact -log p(x0)) over the same "
            "samples, with the standard error of the paired differences.",
            "The published estimator is the paper's joint loss; for ell > 1 it is not a "
            "bound and can fall below the entropy. The valid bound can not.",
            "'valid - NLL' is 0 for a model with the exact conditionals: it is how far "
            "training is from convergence. Every training step draws a fresh batch from the "
            "target, so it shrinks with the draws seen (steps x batch), not with repeats. "
            "At-least-one masking masks one sub-token of each training sample for sure and "
            "reweights the loss by the likelihood ratio: the same objective as independent "
            "masking, with less variance, so fewer draws reach the same gap.",
            f"Samples: {t.sample_count} per model, {t.sample_steps} steps; TV on a "
            f"{t.tv_bins}x{t.tv_bins} grid.",
            "The paper gives Figure 4 as a picture only: there are no paper numbers to "
            "compare with.",
        ],
    )


def figure4_paired(ctx: ReportContext) -> None:
    comparison_table(
        ctx,
        TOY_CLAIMS,
        "figure4_toy2d_paired",
        "2-D toy: paired comparisons of the valid bound",
        "nats per sample",
    )


def figure4_samples(ctx: ReportContext) -> None:
    """The target beside each run's sample histogram, pooled to 64 x 64 so that sparse
    histograms stay visible."""
    runs = list(ctx.rows())
    if not runs:
        return
    t = runs[0][1].task.params
    r = t.resolution
    k = max(1, r // 64)

    def pooled(image: np.ndarray) -> np.ndarray:
        return image[: r // k * k, : r // k * k].reshape(r // k, k, r // k, k).sum((1, 3))

    panels = [("target", pooled(target_pmf(t.image, r, t.gamma).numpy()))]
    for run, cfg in runs:
        path = ctx.download(run["run_id"], "samples/samples_histogram.npz")
        counts = np.load(path)["counts"].astype(np.float64)
        invalid = 100 * _metrics(run)["invalid_sample_rate"]
        panels.append((f"{ctx.run_name(cfg)}\n(invalid {invalid:.2f}%)", pooled(counts)))
    ctx.save_panels(panels, "figure4_toy2d")


def _sweep(ctx: ReportContext) -> tuple[list[int], list[tuple[RunConfig, dict[str, float]]]]:
    """The sweep's step counts and each run's (config, metrics); nothing if no run swept."""
    runs = [(cfg, _metrics(run)) for run, cfg in ctx.rows() if cfg.task.params.sweep_steps]
    if not runs:
        return [], []
    return sorted(runs[0][0].task.params.sweep_steps), runs


# Where the decoders must differ: the joint decoder draws the digits of a coordinate
# together, the independent one from a product of marginals.
SWEEP_CLAIM = ("prime-l2-joint", "prime-l2-independent")


def _sweep_claim(
    runs: list[tuple[RunConfig, dict[str, float]]], steps: list[int]
) -> tuple[dict[str, str], int]:
    """Joint minus independent TV at each T, with its verdict, and the number of training
    seeds both have. One seed: the two rows' replicates (unpaired). Several: the mean of
    the per-seed differences, SE from their spread. Where a variant has several runs at
    one seed, every cell says so and the count is 0."""
    try:
        pairs = seed_pairs(((cfg.variant, cfg.seed, m) for cfg, m in runs), *SWEEP_CLAIM)
    except AmbiguousPairing as err:
        return {f"T={t}": str(err) for t in steps}, 0
    cells = {}
    for t in steps:
        per_seed = [
            (
                a[f"tv_steps{t}"] - b[f"tv_steps{t}"],
                math.hypot(a[f"tv_steps{t}_se"], b[f"tv_steps{t}_se"]),
            )
            for a, b in pairs
        ]
        if per_seed:
            d, se, q = combine_seeds(per_seed)
            cells[f"T={t}"] = f"{d:+.3f} ± {se:.3f}: {verdict(d, se, q)}"
    return cells, len(pairs)


def figure4_steps_table(ctx: ReportContext) -> None:
    steps, runs = _sweep(ctx)
    if not runs:
        return
    rows = []
    for cfg, m in runs:
        variant = ctx.run_name(cfg)
        cells = {
            f"T={t}": f"{m[f'tv_steps{t}']:.3f} ± {m[f'tv_steps{t}_se']:.3f} "
            f"({100 * m[f'invalid_steps{t}']:.2f}%)"
            for t in steps
        }
        rows.append({"variant": variant, **cells})
    floor = runs[0][1]
    rows.append(
        {
            "variant": "exact draws (floor)",
            **dict.fromkeys(
                (f"T={t}" for t in steps), f"{floor['tv_floor']:.3f} ± {floor['tv_floor_se']:.3f}"
            ),
        }
    )
    cells, seeds = _sweep_claim(runs, steps)
    if cells:
        rows.append({"variant": "joint - independent (TV)", **cells})
    t = runs[0][0].task.params
    how = (
        "from the two rows' independent replicates (unpaired)"
        if seeds == 1
        else f"the mean over {seeds} training seeds of the per-seed differences, its SE from "
        f"their spread, the interval +- Student's t quantile ({seeds - 1} degrees of freedom)"
    )
    claim = "Last row: the claim 'the joint decoder's TV is below the independent one's'"
    ctx.write_table(
        pd.DataFrame(rows),
        "figure4_toy2d_steps",
        "2-D toy: TV to the target (invalid-sample rate) against the number of sampling steps",
        notes=[
            f"Each cell: mean ± standard error of the TV distance over {t.sweep_replicates} "
            f"independent sets of {t.sweep_samples} samples (TV on a {t.tv_bins}x{t.tv_bins} "
            "grid; a finite set's TV is biased upward, equally for every row, down to the "
            "exact-draw floor), with the invalid-sample rate over all sets.",
            *([f"{claim} at each T, {how}, at 95%."] if cells and seeds else []),
            *([f"{claim}: not compared (several runs at a seed)."] if cells and not seeds else []),
        ],
    )


def figure4_steps(ctx: ReportContext) -> None:
    import matplotlib.pyplot as plt

    steps, runs = _sweep(ctx)
    if not runs:
        return
    fig, (tv_ax, bad_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    # One colour per variant: its training seeds are lines of the same colour.
    colours: dict[str, str] = {}
    for cfg, m in runs:
        first = cfg.variant not in colours
        colour = colours.setdefault(cfg.variant, f"C{len(colours)}")
        style = dict(marker="o", ms=4, capsize=2, color=colour, alpha=0.9)
        several = ctx.run_name(cfg) != cfg.variant
        label = (f"{cfg.variant} (a line per run)" if several else cfg.variant) if first else None
        tv = [m[f"tv_steps{t}"] for t in steps]
        tv_se = [2 * m[f"tv_steps{t}_se"] for t in steps]
        bad = [100 * m[f"invalid_steps{t}"] for t in steps]
        bad_se = [200 * m[f"invalid_steps{t}_se"] for t in steps]
        tv_ax.errorbar(steps, tv, yerr=tv_se, label=label, **style)
        bad_ax.errorbar(steps, bad, yerr=bad_se, label=label, **style)
    floor = runs[0][1]["tv_floor"]
    tv_ax.axhline(floor, color="grey", ls="--", label="exact draws (floor)")
    for ax, label in ((tv_ax, "TV to the target"), (bad_ax, "invalid samples (%)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps T")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    tv_ax.set_title("TV against steps (± 2 SE)")
    bad_ax.set_title("Invalid-sample rate against steps (± 2 SE)")
    tv_ax.legend(fontsize=8)
    ctx.save_figure(fig, "figure4_toy2d_steps")
