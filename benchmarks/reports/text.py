"""Table 1 (text perplexity, one row per ``text-lm`` run, one column per estimator) and
Table 2 (zero-shot perplexity of the Table 1 checkpoints)."""

from __future__ import annotations

import math

import pandas as pd

from ..config.run_config import RunConfig
from ..data.text_sources import ZERO_SHOT
from .context import ReportContext
from .gen_ppl_paired import Sampled, claim_row, claims_table
from .paired import Claim, comparison_table
from .speed import SPEED_NOTE, samples_per_s, tokens_per_s
from .tables import run_value
from .text_quality import (
    MAUVE,
    QUALITY_NOTE,
    Judges,
    entropy_cell,
    gen_ppl_cell,
    judge_notes,
    mauve_cell,
)

__all__ = [
    "TABLE1_CLAIMS",
    "format_ppl",
    "table1",
    "table1_gen_ppl",
    "table1_paired",
    "table2",
    "trained_rows",
]

# The orderings of the paper's Table 1, by the variant names of the table1 experiments.
TABLE1_CLAIMS = [
    Claim("MDLM-Prime l=2 below MDLM", "prime-l2", "mdlm"),
    Claim("MDLM-Prime l=4 below MDLM", "prime-l4", "mdlm"),
    Claim("MDLM-Prime l=4 below MDLM-Prime l=2", "prime-l4", "prime-l2"),
    Claim("BD3-LM L'=4 below MDLM", "bd3lm-l4", "mdlm"),
    Claim("Block-Prime L'=4 l=2 below BD3-LM L'=4", "block-prime-l4-l2", "bd3lm-l4"),
    Claim("AR below MDLM", "ar", "mdlm"),
    Claim("AR below BD3-LM L'=4", "ar", "bd3lm-l4"),
]


def _label(cfg: RunConfig) -> tuple[str, int | None, str]:
    """(row name, ell or None for AR, carry-over yes/no/-)."""
    name, p = cfg.model.name, cfg.model.params
    if name == "ar":
        return "AR", None, "-"
    if name == "mdm":
        return "MDLM", 1, "-"
    carry = "yes" if p.carry_over else "no"
    if name == "bd3lm":
        if p.ell == 1:
            return f"BD3-LM L'={p.block_size}", 1, "-"
        return f"Block-Prime L'={p.block_size} l={p.ell}", p.ell, carry
    return f"MDLM-Prime l={p.ell}", p.ell, carry


def _paper_row(paper: pd.DataFrame, cfg: RunConfig, name: str, ell: int | None) -> pd.DataFrame:
    if cfg.model.name == "bd3lm":
        if ell != 1:
            return paper.iloc[0:0]  # block diffusion over sub-tokens has no published row
        return paper[paper["model"] == f"BD3-LM (L'={cfg.model.params.block_size})"]
    match = paper[paper["model"] == ("ARM" if name == "AR" else name.split(" ")[0])]
    if ell is not None and name != "MDLM":
        match = match[match["ell"] == ell]
    return match


def _training(cfg: RunConfig) -> str:
    if cfg.weights is not None:
        return f"released weights: {cfg.weights.origin}"
    t = cfg.train
    start = "from scratch" if t.init_from is None else f"fine-tuned from {t.init_from}"
    lr = f"lr {t.lr:g}" + (f" cosine to {t.min_lr:g}" if t.lr_decay == "cosine" else "")
    wd = f", wd {t.weight_decay:g}" + (" (matrices)" if t.weight_decay_on == "matrices" else "")
    return f"{start}, {t.steps} steps, {lr}{wd if t.weight_decay else ''}"


def _window(run: pd.Series) -> str:
    beta = run_value(run, "metrics.training_window_beta")
    omega = run_value(run, "metrics.training_window_omega")
    if beta is None or omega is None:
        return "-"
    return f"[{beta:.3g}, {omega:.3g}]"


def format_ppl(run: pd.Series, key: str, ppl: bool = True) -> str:
    value = run_value(run, f"metrics.{key}")
    if value is None:
        return "-"
    return f"{math.exp(value):.2f}" if ppl else f"{value:.4f}"


def _nll_se(run: pd.Series) -> str:
    for key in ("val_nll_valid_bound", "val_nll_exact"):
        value, se = run_value(run, "metrics." + key), run_value(run, "metrics." + key + "_se")
        if value is not None:
            return f"{value:.4f} ± {se:.4f}"
    return "-"


def _pct(run: pd.Series, key: str) -> str:
    value = run_value(run, "metrics." + key)
    return "-" if value is None else f"{100 * value:.2f}%"


def _idle(run: pd.Series) -> str:
    if run_value(run, "metrics.sample_idle_ratio") is None:
        return "-"
    return f"{_pct(run, 'sample_idle_ratio')} ({_pct(run, 'sample_idle_ratio_closed_form')})"


def _count(run: pd.Series, key: str) -> str:
    value = run_value(run, "metrics." + key)
    return "-" if value is None else f"{value:.0f}"


def _corrected(corrected: pd.DataFrame, carry: str, ell: int | None, hybrid: bool) -> str:
    if hybrid:
        return "-"
    if carry == "yes":
        return "not re-scored"
    fixed = corrected[(corrected["ell"] == ell) & (corrected["carry_over"] == 0)]
    return f"{fixed['ppl'].iloc[0]:.2f}" if ell and ell > 1 and len(fixed) else "-"


def trained_rows(ctx: ReportContext) -> ReportContext:
    """Table 1's runs: each trains its model or evaluates released weights; a run that
    evaluates an upstream run's checkpoint (a sampler sweep) is another report's, and a
    run that judges the others' samples (a ``task.judge`` of run:<experiment>/<variant>)
    is their judge, not a row."""
    judges = {getattr(c.task.params, "judge_run", None) for c in ctx.configs.values()}
    return ctx.subset(
        lambda cfg: cfg.upstream is None and (cfg.experiment, cfg.variant) not in judges
    )


def _ar_steps(ctx: ReportContext) -> int | None:
    steps = [c.train.steps for _, c in ctx.rows() if c.model and c.model.name == "ar"]
    return max(steps) if steps else None


def table1(ctx: ReportContext) -> None:
    ctx = trained_rows(ctx)
    paper = ctx.paper("table1_owt_ppl")
    corrected = ctx.paper("table1_corrected_ppl")
    judges = Judges(ctx.rows())
    mauve = any(run_value(run, f"metrics.{MAUVE}") is not None for run, _ in ctx.rows())
    rows = []
    for run, cfg in ctx.rows():
        name, ell, carry = _label(cfg)
        match = _paper_row(paper, cfg, name, ell)
        rows.append(
            {
                "model": ctx.run_name(cfg, name),
                "carry-over": carry,
                "paper PPL (as published)": (
                    f"{match['ppl'].iloc[0]:.2f} ({match['status'].iloc[0]})" if len(match) else "-"
                ),
                "authors' corrected PPL (valid bound)": _corrected(
                    corrected, carry, ell, cfg.model.name == "bd3lm"
                ),
                "ours: exact PPL (AR)": format_ppl(run, "val_nll_exact"),
                "ours: valid-bound PPL": format_ppl(run, "val_nll_valid_bound"),
                "ours: published-estimator PPL": (
                    format_ppl(run, "val_nll_published") if ell and ell > 1 else "-"
                ),
                "NLL/token (valid bound or exact) ± SE": _nll_se(run),
                "idle-step ratio (closed form)": _idle(run),
                "NFE": _count(run, "sample_nfe"),
                "samples/s (device)": samples_per_s(run),
                "tokens/s": tokens_per_s(run),
                "gen PPL": gen_ppl_cell(run, judges),
                "entropy (nats)": entropy_cell(run),
                **({"MAUVE": mauve_cell(run)} if mauve else {}),
                "training": _training(cfg),
                "training window": _window(run),
            }
        )
    if not rows:
        return
    _, first = next(iter(ctx.rows()))
    task = first.task.params
    ctx.write_table(
        pd.DataFrame(rows),
        "table1_text_ppl",
        f"Text perplexity, {task.dataset} validation (Table 1)",
        notes=[
            "Each column holds one estimator. 'exact': AR next-token NLL. 'valid bound': the "
            "continuous-time NELBO with sub-token marginals (an upper bound on the NLL). "
            "'published estimator': the paper's joint loss, not a bound for ell > 1.",
            "The paper's MDLM-Prime perplexities were withdrawn by the authors (2026 errata); "
            "their corrected values are the valid bound of the carry-over-free checkpoints.",
            "BD3-LM and Block-Prime (block diffusion over sub-tokens, no published system): "
            "autoregressive over blocks of L' tokens, masked diffusion inside a block. Their "
            "valid bound is the block NELBO over the full time window [eps, 1] whatever "
            "window they trained in (shown; a clipped window is not a bound); their idle-step "
            "ratio is per block, with the closed form for L' in place of L; NFE counts the "
            "denoiser calls (not the passes that cache a finished block's keys).",
            f"Scale {ctx.scale}: dataset {task.dataset}, tokenizer {task.tokenizer}, blocks "
            f"of {task.block_size}, {first.train.steps} training steps; at the cpu scale only "
            "relative comparisons are meaningful.",
            "Every model sees the same tokens (steps x batch x block); the training column "
            "gives each row's optimiser recipe (lr schedule, weight decay). All networks "
            "start from the DiT initialisation (zero-initialised adaLN gates and head).",
            _samples_note(ctx) + QUALITY_NOTE,
            *judge_notes(judges, _ar_steps(ctx)),
            SPEED_NOTE,
        ],
    )


def _samples_note(ctx: ReportContext) -> str:
    """The rows' sample counts and sampler precision, each value the rows hold once."""

    def values(field: str) -> str:
        return "/".join(sorted({f"{getattr(c.task.params, field):g}" for _, c in ctx.rows()}))

    return (
        f"Samples per row: {values('sample_count')}, sampling dtype "
        f"{'/'.join(sorted({c.task.params.sampling_dtype for _, c in ctx.rows()}))}, top-p "
        f"{values('sample_top_p')} (each row's sampler settings are on its metric cards). "
    )


def table1_paired(ctx: ReportContext) -> None:
    comparison_table(
        trained_rows(ctx),
        TABLE1_CLAIMS,
        "table1_text_paired",
        "Text: paired comparisons of Table 1's orderings (valid bound or exact NLL)",
        "nats per token",
        notes=["The AR model's exact NLL is over the L - 1 predicted tokens of a block."],
    )


def table1_gen_ppl(ctx: ReportContext) -> None:
    """Table 1's orderings in generative perplexity, each row's samples at its own
    sampler steps (diffusion pairs only at equal steps)."""
    ctx = trained_rows(ctx)
    items = [
        (cfg.variant, cfg.seed, Sampled(run, cfg, None if _label(cfg)[1] is None else _steps(cfg)))
        for run, cfg in ctx.rows()
    ]
    claims = [Claim(f"gen PPL: {c.text}", c.lower, c.than) for c in TABLE1_CLAIMS]
    rows = [row for claim in claims if (row := claim_row(ctx, claim, items))]
    claims_table(ctx, rows, "table1_text_gen_ppl_paired", "Text: Table 1's orderings in gen PPL")


def _steps(cfg: RunConfig) -> int | str:
    p = cfg.task.params
    return "first hitting" if p.sample_first_hitting else p.sample_steps


def table2(ctx: ReportContext) -> None:
    rows = []
    for run, cfg in ctx.rows():
        for estimator in ("exact", "valid_bound", "published"):
            cells = {s: format_ppl(run, f"zs_{s}_nll_{estimator}") for s in ZERO_SHOT}
            if all(v == "-" for v in cells.values()):
                continue
            if estimator == "published" and cfg.variant in ("mdlm", "ar"):
                continue  # identical to the valid bound for MDLM; undefined for AR
            label = estimator.replace("_", " ")
            rows.append({"variant": ctx.run_name(cfg), "estimator": label, **cells})
    if rows:
        ctx.write_table(
            pd.DataFrame(rows),
            "table2_zero_shot",
            "Zero-shot perplexity (Table 2)",
            notes=[
                "One estimator per row. The paper's values are in "
                "results/paper/table2_zero_shot_ppl.csv; its MDLM-Prime rows are "
                "withdrawn published-estimator values."
            ],
        )
