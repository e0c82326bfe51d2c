"""Zero-shot perplexities (Table 2): the checkpoints of a ``text-lm`` experiment on the
seven zero-shot sets, with the estimators of Table 1."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pandas as pd
import torch

from ..config import ConfigError, load_experiment, parse_overrides
from ..data.text import ZERO_SHOT, TextSource, tokenized_blocks
from ..data.tokenizers import get_tokenizer
from ..registry import TASKS
from ..report import ReportContext
from .base import DataSpec, EvalContext, EvalOutput, Task
from .likelihood import block_nll, nll_metrics
from .text import subset
from .text_report import format_ppl

__all__ = ["TextZeroShot", "ZeroShotParams"]


@dataclass(frozen=True)
class ZeroShotParams:
    train_experiment: str = "table1"
    train_overrides: tuple[str, ...] = ()  # the --set overrides the training sweep used
    sets: tuple[str, ...] = tuple(ZERO_SHOT)
    data_dir: str | None = None  # local <set>.parquet|jsonl files in the hub schemas
    tokenizer: Literal["bytes", "gpt2"] = "gpt2"
    block_size: int = 1024
    num_proc: int = 1
    eval_blocks: int = 0
    eval_passes: int = 4
    eval_batch: int = 16

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sets) - set(ZERO_SHOT))
        if unknown:
            raise ConfigError(
                f"task.sets: unknown set(s) {', '.join(unknown)}; valid: {', '.join(ZERO_SHOT)}"
            )


@TASKS.register("text-zero-shot")
class TextZeroShot(Task):
    """Zero-shot perplexities of the checkpoints of ``train_experiment`` (Table 2)."""

    Params = ZeroShotParams
    trainable = False
    needs_model = False  # builds the trained model of train_experiment itself
    report_title = "Zero-shot perplexity (Table 2)"

    def data_spec(self) -> DataSpec:
        return DataSpec(get_tokenizer(self.params.tokenizer).num_classes, self.params.block_size)

    def _source(self, name: str) -> TextSource:
        source = ZERO_SHOT[name]
        if self.params.data_dir is None:
            return source
        files = sorted(Path(self.params.data_dir).glob(f"{name}.*"))
        if not files:
            raise FileNotFoundError(f"{self.params.data_dir}: no {name}.parquet/.jsonl file")
        return replace(source, path=str(files[0]))

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        from ..runner import load_trained_model

        p = self.params
        (trained,) = load_experiment(p.train_experiment).resolve(
            self.config.scale, parse_overrides(list(p.train_overrides)), [self.config.variant]
        )
        model, ema = load_trained_model(trained, ctx.runs_dir, ctx.device)
        tok = get_tokenizer(p.tokenizer)
        metrics = []
        for name in p.sets:
            blocks = tokenized_blocks(self._source(name), tok, p.block_size, num_proc=p.num_proc)
            chosen = subset(blocks.blocks.shape[0], p.eval_blocks)
            per_block = block_nll(
                model,
                blocks.blocks[chosen],
                passes=p.eval_passes,
                batch=p.eval_batch,
                seed=70_000 + ctx.seed,
                device=ctx.device,
                desc=f"{name} NLL",
            )
            card = {
                "split": f"{name} ({ZERO_SHOT[name].split})",
                "blocks": len(chosen),
                "checkpoint_run": trained.run_id,
                "ema": ema,
            }
            tokens = {
                "exact": p.block_size - 1,
                "published": p.block_size,
                "valid_bound": p.block_size,
            }
            metrics += nll_metrics(f"zs_{name}", per_block, tokens, card)
        return EvalOutput(metrics)

    @classmethod
    def report(cls, ctx: ReportContext) -> None:
        rows = []
        sets = list(ZERO_SHOT)
        for _, run in ctx.runs.sort_values("tags.primebench.variant").iterrows():
            variant = run["tags.primebench.variant"]  # the table1 variant it evaluates
            for estimator in ("exact", "valid_bound", "published"):
                cells = {s: format_ppl(run, f"zs_{s}_nll_{estimator}") for s in sets}
                if all(v == "-" for v in cells.values()):
                    continue
                if estimator == "published" and variant in ("mdlm", "ar"):
                    continue  # identical to the valid bound for MDLM; undefined for AR
                rows.append({"variant": variant, "estimator": estimator.replace("_", " "), **cells})
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
