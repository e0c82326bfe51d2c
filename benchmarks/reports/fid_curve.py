"""The FID curve of each image row (task ``image-fid-curve``) beside its final number.

The authors early-stopped every image row at the epoch of its best 2,000-sample FID. Each
curve run scored the checkpoints one training run kept; this renderer draws FID against
the training epoch (the optimizer step at the cpu scale, where epochs mean nothing), marks
the row's own training length (the authors' epoch at the paper scale), and tabulates the
curve's minimum beside the row's own 50,000-sample FID at that epoch. The curve is
measured against the final FID's own reference images: choosing an epoch by it is
choosing on the test metric, and the chosen number is optimistic.
"""

from __future__ import annotations

import math

import pandas as pd

from ..config.experiments import upstream_config
from ..config.recipe_tables import steps_per_epoch
from ..config.run_config import RunConfig
from .context import ReportContext

__all__ = ["fid_curves"]

CURVE_TASK = "image-fid-curve"
OPTIMISTIC = (
    "The curve is scored against the reference images of the final FID: an epoch chosen "
    "by it (as the authors chose theirs) is chosen on the test metric, so the FID at the "
    "chosen epoch is optimistic, and more so the more epochs were compared."
)


def _unit(cfg: RunConfig) -> tuple[str, float]:
    """(x-axis unit, optimizer steps per unit): the authors' epochs at the paper scale."""
    if cfg.scale == "paper":
        return "epoch", float(steps_per_epoch(cfg.task.params.dataset))
    return "step", 1.0


def _curves(ctx: ReportContext) -> list[dict]:
    """One entry per curve run: its points and the trained row's own numbers."""
    by_run_id = {cfg.run_id: run for run, cfg in ctx.rows()}
    out = []
    for run, cfg in ctx.rows():
        if cfg.task.name != CURVE_TASK:
            continue
        trained = upstream_config(cfg)
        points = ctx.metric_history(run["run_id"], "fid_curve")
        errors = ctx.metric_history(run["run_id"], "fid_curve_se")
        row = by_run_id.get(trained.run_id)
        final = None if row is None else row.get("metrics.fid")
        unit, per = _unit(trained)
        out.append(
            {
                "cfg": cfg,
                "trained": trained,
                "points": sorted(points.items()),
                "errors": errors,
                "final": None if final is None or pd.isna(final) else float(final),
                "unit": unit,
                "per": per,
                # the row's name; a curve run that shares it (and its seed) is told apart
                "name": ctx.run_name(cfg, f"{trained.experiment}/{trained.variant}"),
            }
        )
    return out


def _at(value: float, per: float) -> str:
    return f"{value / per:g}" if per != 1 else f"{value:g}"


def fid_curves(ctx: ReportContext) -> None:
    curves = _curves(ctx)
    if not curves:
        return
    rows = []
    for c in curves:
        trained, points, per = c["trained"], c["points"], c["per"]
        end = trained.train.steps
        best_step, best = min(points, key=lambda p: p[1])
        at_end = dict(points).get(end)
        se = c["errors"].get(end)
        rows.append(
            {
                "row": c["name"],
                "dataset": trained.task.params.dataset,
                "points": len(points),
                f"trained to ({c['unit']})": _at(end, per),
                "FID(2k) there": "-"
                if at_end is None
                else f"{at_end:.2f}" + (f" ± {se:.2f}" if se is not None else ""),
                f"best FID(2k) ({c['unit']})": f"{best:.2f} ({_at(best_step, per)})",
                "FID(50k) of the row": "-" if c["final"] is None else f"{c['final']:.2f}",
                "samples": int(c["cfg"].task.params.sample_count),
            }
        )
    ctx.write_table(
        pd.DataFrame(rows),
        "fid_curves",
        "FID along training (the authors' early-stopping curve)",
        notes=[
            "Each row's FID from its kept checkpoints, at the row's own sampler; 'trained "
            "to' is the row's training length (at the paper scale the authors' early-stopped "
            "epoch, 97 optimizer steps per CIFAR-10 epoch and 2,502 per ImageNet-32 epoch).",
            "FID(50k) of the row is the row's own evaluation at that epoch (Tables 3 and 4).",
            OPTIMISTIC,
        ],
    )
    _figure(ctx, curves)


def _figure(ctx: ReportContext, curves: list[dict]) -> None:
    import matplotlib.pyplot as plt

    datasets = sorted({c["trained"].task.params.dataset for c in curves})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for c in (c for c in curves if c["trained"].task.params.dataset == dataset):
            steps = [s for s, _ in c["points"]]
            x = [s / c["per"] for s in steps]
            y = [v for _, v in c["points"]]
            err = [c["errors"].get(s, math.nan) for s in steps]
            label = c["name"]
            line = ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, label=label)[0]
            end = c["trained"].train.steps / c["per"]
            ax.axvline(end, color=line.get_color(), ls=":", lw=0.8)
        ax.set_title(f"{dataset}: FID of 2,000 samples per kept checkpoint", fontsize=9)
        ax.set_xlabel(curves[0]["unit"])
        ax.set_ylabel("FID (dotted: the row's training length)")
        ax.legend(fontsize=7)
    ctx.save_figure(fig, "fid_curves")
