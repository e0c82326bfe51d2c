"""Table 3 (image generation) and its sample grids (Table 4: :mod:`.ell_nfe`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.experiments import upstream_config
from ..config.run_config import RunConfig
from .context import ReportContext
from .paired import (
    Z95,
    AmbiguousPairing,
    Claim,
    combine_seeds,
    comparison_table,
    seed_pairs,
    verdict,
)
from .speed import SPEED_NOTE, samples_per_s

__all__ = ["table3", "table3_paired", "table3_nfe", "sample_grid", "IMAGE_CLAIMS"]

IMAGE_CLAIMS = [Claim("Prime l=2 below MDM (held-out likelihood)", "prime-l2", "mdm")]


def _ell(cfg: RunConfig) -> int:
    """Sub-tokens per pixel of the model a run trained (MDM and MDM-Mixture: 1)."""
    return getattr(cfg.model.params, "ell", 1)


def _name(cfg: RunConfig) -> str:
    if cfg.model.name == "mdm-mixture":
        return "MDM-Mixture"
    return "MDM" if _ell(cfg) == 1 else f"MDM-Prime (l={_ell(cfg)})"


def _metrics(run: pd.Series) -> dict[str, float]:
    """The run's metrics (a metric other runs have and this one lacks is left out)."""
    out = {k[len("metrics.") :]: v for k, v in run.items() if k.startswith("metrics.")}
    return {k: float(v) for k, v in out.items() if v is not None and not pd.isna(v)}


def _fid_cell(m: dict[str, float], suffix: str = "") -> str:
    se = m.get(f"fid_se{suffix}")
    return f"{m[f'fid{suffix}']:.2f}" + (f" ± {se:.2f}" if se is not None else "")


def _kid_cell(m: dict[str, float]) -> str:
    """KID x 1e3, with its SD over subsets when there were several (with N at most the
    subset size of 1,000 every subset holds all the samples, and the SD is 0)."""
    kid, std = 1e3 * m["kid"], 1e3 * m.get("kid_std", 0.0)
    return f"{kid:.2f} ± {std:.2f}" if round(std, 2) > 0 else f"{kid:.2f}"


def _idle_cell(m: dict[str, float], suffix: str = "") -> str:
    value = m.get(f"sample_idle_ratio{suffix}")
    return "-" if value is None else f"{100 * value:.2f}%"


def _floor_cells(m: dict[str, float], suffix: str = "") -> tuple[str, str]:
    """(the real-data floor of FID, this FID as a multiple of it), or dashes."""
    floor = m.get("fid_real_floor")
    if floor is None:
        return "-", "-"
    return f"{floor:.2f}", f"{m[f'fid{suffix}'] / floor:.2f}x"


def table3(ctx: ReportContext) -> None:
    rows = []
    paper = ctx.paper("table3_images")
    for run, cfg in ctx.rows():
        m = _metrics(run)
        p = cfg.task.params
        floor, ratio = _floor_cells(m)
        trained = upstream_config(cfg) if cfg.upstream else cfg
        match = paper[(paper["dataset"] == p.dataset) & (paper["model"] == _name(trained))]
        at_nfe = match["nfe"] == p.sample_steps
        match = match[at_nfe] if at_nfe.any() else match  # the paper's row, and its NFE
        rows.append(
            {
                "variant": ctx.run_name(cfg),
                "dataset": p.dataset,
                "ell": _ell(trained),
                "NFE": int(m.get("sample_nfe", 0)),
                "idle-step ratio": _idle_cell(m),
                "samples/s (device)": samples_per_s(run),
                "paper FID (50k)": (
                    f"{match['fid'].iloc[0]:.2f} at NFE {match['nfe'].iloc[0]:.0f}"
                    if len(match)
                    else "-"
                ),
                f"FID torch-fidelity (N={p.sample_count})": _fid_cell(m),
                "real-data floor": floor,
                "FID / floor": ratio,
                "FID clean-fid": f"{m['fid_cleanfid']:.2f}" if "fid_cleanfid" in m else "-",
                "KID x 1e3": _kid_cell(m),
                "paper IS": (f"{match['is'].iloc[0]:.2f}" if len(match) else "-"),
                "IS": f"{m['is_mean']:.2f} ± {m['is_std']:.2f}" if "is_mean" in m else "-",
                "BPD (valid bound)": f"{m['test_bpd_valid_bound']:.3f}",
                "invalid values": f"{100 * m.get('sample_invalid_rate', 0):.2f}%",
            }
        )
    if not rows:
        return
    ctx.write_table(
        pd.DataFrame(rows),
        # Not "table3_images": that is the paper's own table, results/paper/table3_images.csv.
        "table3_images_fid",
        "Image generation (Table 3)",
        notes=[
            "FID and KID from the samples against the reference set (CIFAR-10 train, "
            "ImageNet-32 validation, Fashion-MNIST test); N samples as stated. Small-N FID is "
            "biased upward: compare models at equal N, and read KID (unbiased) beside it.",
            "torch-fidelity's extractor is the primary FID; clean-fid's resize is a "
            "cross-check (different resize filter, so slightly different values).",
            "FID ± SE: the SE is the spread of FID over random halves of the samples (the "
            "noise of the N samples, not of training). Real-data floor: FID of N held-out "
            "real images, in neither the reference nor the training set, against the same "
            "reference: the best N samples can score (FID / floor = 1).",
            SPEED_NOTE,
        ],
    )


def _nfe_rows(ctx: ReportContext) -> list[dict]:
    """One row per (run, sampler step count): the task's sample_steps and its fid_steps."""
    rows = []
    for run, cfg in ctx.rows():
        m, p = _metrics(run), cfg.task.params
        for steps in (p.sample_steps, *getattr(p, "fid_steps", ())):
            suffix = "" if steps == p.sample_steps else f"_steps{steps}"
            if f"fid{suffix}" not in m:
                continue
            rows.append(
                {
                    "variant": ctx.run_name(cfg),
                    "model": cfg.variant,
                    "seed": cfg.seed,
                    "steps": steps,
                    "nfe": int(m[f"sample_nfe{suffix}"]),
                    "fid": m[f"fid{suffix}"],
                    "se": m.get(f"fid_se{suffix}", math.nan),
                    "kid": m[f"kid{suffix}"],
                    "floor": m.get("fid_real_floor", math.nan),
                    "invalid": m.get(f"sample_invalid_rate{suffix}", 0.0),
                    "idle": _idle_cell(m, suffix),
                    "speed": samples_per_s(run, suffix),
                    "samples": p.sample_count,
                }
            )
    return rows


def table3_nfe(ctx: ReportContext) -> None:
    """FID against the number of sampler steps, and Prime l=2 against MDM at each."""
    rows = _nfe_rows(ctx)
    if not rows or len({r["steps"] for r in rows}) < 2:
        return
    table = pd.DataFrame(
        {
            "variant": r["variant"],
            "steps": r["steps"],
            "NFE": r["nfe"],
            "idle-step ratio": r["idle"],
            "samples/s (device)": r["speed"],
            f"FID ± SE (N={r['samples']})": f"{r['fid']:.2f} ± {r['se']:.2f}",
            "KID x 1e3": f"{1e3 * r['kid']:.2f}",
            "FID / floor": f"{r['fid'] / r['floor']:.2f}x" if r["floor"] == r["floor"] else "-",
            "invalid values": f"{100 * r['invalid']:.2f}%",
        }
        for r in sorted(rows, key=lambda r: (r["steps"], r["variant"]))
    )
    claims = [
        claim for steps in sorted({r["steps"] for r in rows}) if (claim := _fid_claim(rows, steps))
    ]
    notes = [
        "Every step count draws fresh samples from the same seeded stream, so two models "
        "at equal steps share their sampling noise. NFE counts network calls (an idle "
        "step reuses the last prediction, so NFE <= steps + 1).",
        "One training seed: the SE of a difference combines the two FIDs' half-sample SEs "
        "as if independent (shared noise makes the true SE smaller, so the verdict errs "
        "toward 'not resolved'), and it holds no spread between trainings. Several seeds: "
        "the mean of the per-seed differences, its SE from their spread, which holds both, "
        "and the interval +- Student's t quantile with (seeds - 1) degrees of freedom.",
        SPEED_NOTE,
    ]
    ctx.write_table(table, "table3_images_nfe", "Images: FID against sampler steps", notes)
    if claims:
        ctx.write_table(
            pd.DataFrame(claims),
            "table3_images_nfe_paired",
            "Images: Prime l=2 against MDM in FID at equal steps",
            ["Difference: FID(Prime l=2) - FID(MDM); verdict at 95%."],
        )
    _nfe_figure(ctx, rows)


def _fid_claim(rows: list[dict], steps: int) -> dict[str, str] | None:
    """Prime l=2 minus MDM in FID at ``steps``, paired by training seed: one seed, the
    difference with the half-sample SEs combined; several, the mean of the per-seed
    differences with the SE of their spread (``combine_seeds``). None without a pair; a
    row that says why where a variant has several runs at one seed."""
    claim = f"Prime l=2 FID below MDM at {steps} steps"
    try:
        pairs = seed_pairs(
            ((r["model"], r["seed"], r) for r in rows if r["steps"] == steps), "prime-l2", "mdm"
        )
    except AmbiguousPairing as err:
        cells = ("seeds", "NFE (Prime / MDM)", "difference ± SE", "95% interval")
        return {"claim": claim, **dict.fromkeys(cells, "-"), "verdict": str(err)}
    if not pairs:
        return None
    diff, se, q = combine_seeds(
        [(a["fid"] - b["fid"], math.hypot(a["se"], b["se"])) for a, b in pairs]
    )
    nfe = ["/".join(map(str, sorted({pair[i]["nfe"] for pair in pairs}))) for i in (0, 1)]
    return {
        "claim": claim,
        "seeds": str(len(pairs)),
        "NFE (Prime / MDM)": f"{nfe[0]} / {nfe[1]}",
        "difference ± SE": f"{diff:+.2f} ± {se:.2f}",
        "95% interval": f"[{diff - q * se:+.2f}, {diff + q * se:+.2f}]",
        "verdict": verdict(diff, se, q) if se == se else "no SE (task.fid_resamples = 0)",
    }


def _nfe_figure(ctx: ReportContext, rows: list[dict]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(r["model"] for r in rows))}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["nfe"])
        ax.errorbar(
            [r["nfe"] for r in mine],
            [r["fid"] for r in mine],
            yerr=[Z95 * r["se"] if r["se"] == r["se"] else 0 for r in mine],
            color=colours[mine[0]["model"]],  # a model's seeds alike
            marker="o",
            capsize=3,
            label=variant,
        )
    floor = rows[0]["floor"]
    if floor == floor:
        ax.axhline(floor, color="grey", ls="--", label=f"real-data floor (N={rows[0]['samples']})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("NFE")
    ax.set_ylabel("FID (95% interval of the samples' noise)")
    ax.legend(fontsize=8)
    ctx.save_figure(fig, "table3_images_nfe")


def table3_paired(ctx: ReportContext) -> None:
    comparison_table(
        ctx,
        IMAGE_CLAIMS,
        "table3_images_paired",
        "Images: paired comparison of the valid bound on held-out images",
        "nats per dimension (divide by ln 2 for bits)",
    )


def sample_grid(ctx: ReportContext) -> None:
    """36 samples of each run, one panel per variant."""
    panels = []
    for run, cfg in ctx.rows():
        images = np.load(Path(ctx.download(run["run_id"], "samples/samples.npz")))["images"][:36]
        n, c, h, w = images.shape
        side = int(math.ceil(math.sqrt(n)))
        canvas = np.zeros((c, side * h, side * w), dtype=np.uint8)
        for i, im in enumerate(images):
            r, q = divmod(i, side)
            canvas[:, r * h : (r + 1) * h, q * w : (q + 1) * w] = im
        panels.append((ctx.run_name(cfg), canvas[0] if c == 1 else canvas.transpose(1, 2, 0)))
    if panels:
        ctx.save_panels(panels, "image_samples")
