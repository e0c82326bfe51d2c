"""The text NFE sweep: generative perplexity and entropy of each trained model against
the network calls of its sampler, with the sampling speed (experiment text-nfe-sweep).

Its runs evaluate the last checkpoint of an upstream run (``upstream:``) at several
sampler step counts T; a row is a run. NFE is what the sampler measured (an idle step
reuses the cached prediction, so NFE <= T + 1 for MDLM and MDLM-Prime; block diffusion
counts its calls over all blocks; an AR model one call per token, one point). The figure
has one line per model (and sampling dtype, when the runs hold several): gen PPL, entropy
and samples/s against NFE. Each T also compares MDLM-Prime and BD3-LM with MDLM in gen
PPL (:mod:`.gen_ppl_paired`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from ..config.experiments import upstream_config
from ..config.run_config import RunConfig
from ..core import ConfigError
from .context import ReportContext
from .gen_ppl_paired import Sampled, claim_row, claims_table
from .paired import Claim
from .speed import SPEED_NOTE, rate, samples_per_s, tokens_per_s
from .tables import run_value
from .text import _label
from .text_quality import (
    ENTROPY,
    GEN_PPL,
    MAUVE,
    QUALITY_NOTE,
    Judges,
    entropy_cell,
    gen_ppl_cell,
    judge_notes,
    mauve_cell,
)

__all__ = ["SWEEP_CLAIMS", "sweep_points", "text_nfe_sweep"]

log = logging.getLogger("primebench")

# (name, trained variant) compared with MDLM (trained variant "mdlm") at each T.
SWEEP_CLAIMS = (
    ("MDLM-Prime l=2", "prime-l2"),
    ("MDLM-Prime l=4", "prime-l4"),
    ("BD3-LM L'=4", "bd3lm-l4"),
)


@dataclass(frozen=True)
class Point:
    """One run of the sweep."""

    run: pd.Series
    cfg: RunConfig
    model: str  # the trained model's row name (Table 1's)
    trained: str  # its experiment/variant
    key: str  # its variant, which the claims name
    steps: int | None  # None: an AR model
    train_steps: int | None  # the trained run's (None: its config does not resolve)

    @property
    def dtype(self) -> str:
        return self.cfg.task.params.sampling_dtype

    def value(self, metric: str) -> float | None:
        return run_value(self.run, f"metrics.{metric}")


def _trained(cfg: RunConfig) -> RunConfig | None:
    try:
        return upstream_config(cfg)
    except ConfigError as err:  # an upstream no longer in this installation's files
        log.warning("report: %s/%s: %s", cfg.experiment, cfg.variant, err)
        return None


def sweep_points(ctx: ReportContext) -> list[Point]:
    """The evaluation-only text runs (an upstream checkpoint sampled), by model and T."""
    points = []
    for run, cfg in ctx.rows():
        if cfg.upstream is None:
            continue
        trained = _trained(cfg)
        key = trained.variant if trained else cfg.upstream.variant or cfg.variant
        name, ell, _ = _label(trained) if trained else (key, 1, "-")
        steps = None if ell is None else cfg.task.params.sample_steps  # AR: no step grid
        where, trained_steps = f"{cfg.upstream.experiment}/{key}", trained and trained.train.steps
        points.append(Point(run, cfg, name, where, key, steps, trained_steps))
    return sorted(points, key=lambda p: (p.model, p.dtype, p.steps or 0, p.cfg.seed))


def _series(points: list[Point]) -> dict[str, list[Point]]:
    """Line name -> its points in NFE order: the model, and the dtype when several."""
    several = len({p.dtype for p in points}) > 1
    lines: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        lines[p.model + (f" ({p.dtype})" if several else "")].append(p)
    return {k: sorted(v, key=lambda p: p.value("sample_nfe") or 0) for k, v in lines.items()}


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def text_nfe_sweep(ctx: ReportContext) -> None:
    points = sweep_points(ctx)
    if len({p.steps for p in points if p.steps is not None}) < 2:
        return
    judges = Judges((p.run, p.cfg) for p in points)
    mauve = any(p.value(MAUVE) is not None for p in points)
    several = len({p.dtype for p in points}) > 1
    table = pd.DataFrame(
        {
            "model": p.model,
            "run": ctx.run_name(p.cfg),
            "trained run": p.trained,
            **({"sampling dtype": p.dtype} if several else {}),
            "steps": "-" if p.steps is None else str(p.steps),
            "NFE": _cell(p.value("sample_nfe"), ".0f"),
            "idle-step ratio": _cell(p.value("sample_idle_ratio"), ".2%"),
            "gen PPL": gen_ppl_cell(p.run, judges),
            "entropy (nats)": entropy_cell(p.run),
            **({"MAUVE": mauve_cell(p.run)} if mauve else {}),
            "samples/s (device)": samples_per_s(p.run),
            "tokens/s": tokens_per_s(p.run),
        }
        for p in points
    )
    counts = sorted({p.cfg.task.params.sample_count for p in points})
    ar = [p.train_steps for p in points if p.steps is None and p.train_steps is not None]
    ctx.write_table(
        table,
        "text_nfe_sweep",
        "Text: generative perplexity and entropy against NFE",
        notes=[
            f"{'/'.join(map(str, counts))} samples per run from the trained run's last "
            "checkpoint (EMA weights where it kept them), every run of one training seed "
            "from the same seeded sampling stream. NFE: network calls per sampler call, "
            "measured (an idle step reuses the cached prediction).",
            QUALITY_NOTE,
            *judge_notes(judges, max(ar, default=None)),
            SPEED_NOTE,
        ],
    )
    rows = []
    for steps, dtype in sorted({(p.steps, p.dtype) for p in points if p.steps is not None}):
        items = [
            (p.key, p.cfg.seed, Sampled(p.run, p.cfg, p.steps))
            for p in points
            if p.steps == steps and p.dtype == dtype
        ]
        at = f" at {steps} steps" + (f", {dtype}" if several else "")
        for name, variant in SWEEP_CLAIMS:
            claim = Claim(f"{name} gen PPL below MDLM{at}", variant, "mdlm")
            if row := claim_row(ctx, claim, items):
                rows.append(row)
    claims_table(ctx, rows, "text_nfe_gen_ppl_paired", "Text: gen PPL against MDLM at equal steps")
    _figure(ctx, _series(points))


def _figure(ctx: ReportContext, lines: dict[str, list[Point]]) -> None:
    import matplotlib.pyplot as plt

    panels = [(GEN_PPL, "gen PPL"), (ENTROPY, "unigram entropy (nats)"), (None, "samples/s")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        drawn = False
        for i, (name, points) in enumerate(lines.items()):
            xy = [
                (p.value("sample_nfe"), p.value(metric) if metric else rate(p.run)) for p in points
            ]
            xy = [(x, y) for x, y in xy if x is not None and y is not None]
            if xy:
                xs, ys = zip(*xy, strict=True)
                line = "-" if len(xy) > 1 else ""  # an AR model: one point
                ax.plot(xs, ys, marker="o", ls=line, color=f"C{i}", label=name)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("NFE")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    ctx.save_figure(fig, "text_nfe_sweep")
