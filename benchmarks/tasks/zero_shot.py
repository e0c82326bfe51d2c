"""Zero-shot perplexities (Table 2): the checkpoints of a ``text-lm`` experiment on the
seven zero-shot sets, with the estimators of Table 1."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from ..config.precision import FASTEST, fastest_network_precision
from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Task, require_at_least
from ..data.text import tokenized_blocks
from ..data.text_sources import ZERO_SHOT, TextSource
from ..data.tokenizers import get_tokenizer
from ..evaluation.shards import sharding_of
from ..registry import TASKS
from ..streams import eval_seed
from .likelihood import Strata, block_nll, nll_metrics, scored_tokens
from .network_autocast import NetworkPrecision
from .text import subset

__all__ = ["TextZeroShot", "ZeroShotParams"]


@dataclass(frozen=True)
class ZeroShotParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "eval_strata",
        "group_docs",
        "network_precision",
        "doc_eos",
    )

    sets: tuple[str, ...] = tuple(ZERO_SHOT)
    """Zero-shot sets to evaluate, of lambada, wikitext, ptb, lm1b, ag_news, pubmed and
    arxiv (docs/method.md §7.2)."""
    data_dir: str | None = None
    """Folder of local <set>.parquet or <set>.jsonl files in the hub schemas; null: the hub."""
    tokenizer: Literal["bytes", "gpt2"] = "gpt2"
    """Tokenizer of the zero-shot text; must be the one the checkpoint was trained with."""
    block_size: int = 1024
    """L, tokens per wrapped block, [BOS] + L - 2 text tokens + [EOS] (the paper: 1024)."""
    num_proc: int = 1
    """Processes that tokenize each set (once; the blocks are cached)."""
    group_docs: int = 0
    """Documents per wrapping group, each cut into blocks on its own, its tail dropped
    (benchmarks.data.blocks); 0: the whole set is one stream (the authors': 1000)."""
    doc_eos: bool = True
    """An EOS after each document before wrapping (MDLM's and the authors' zero-shot sets);
    false: the documents' tokens alone, each block still [BOS] + L - 2 tokens + [EOS]
    (BD3-LM's zero-shot script)."""
    eval_blocks: int = 0
    """Blocks per set, evenly spaced, whose NLL is estimated; 0: every block."""
    eval_passes: int = 4
    """Monte Carlo passes (stratified time draws) averaged per block; AR models take one."""
    eval_batch: int = 16
    """Blocks per network call (with eval_strata batch, also the rows whose times are
    stratified together)."""
    eval_strata: Strata = "set"
    """How a pass stratifies its times: set, over every block (x time block) of a set
    from one seed; batch, within each batch of eval_batch blocks from a seed per batch
    (MDLM's and BD3-LM's evaluation: antithetic times per batch)."""
    network_precision: NetworkPrecision = "float32"
    """Precision of the network's calls: bfloat16 runs them under bfloat16 autocast (the
    authors' text networks' hard-coded one; slow where the machine does not compute
    bfloat16 natively), their output handed on in float32 to the float64-accumulated
    estimators (benchmarks.tasks.network_autocast). fastest: bfloat16 where the machine
    computes it natively, else float32, chosen before the run id is computed."""

    def __post_init__(self) -> None:
        if self.network_precision == FASTEST:
            object.__setattr__(self, "network_precision", fastest_network_precision())
        require_at_least(self, "task", ("group_docs",), 0)
        unknown = sorted(set(self.sets) - set(ZERO_SHOT))
        if unknown:
            raise ConfigError(
                f"task.sets: unknown set(s) {', '.join(unknown)}; valid: {', '.join(ZERO_SHOT)}"
            )


@TASKS.register("text-zero-shot")
class TextZeroShot(Task):
    """Zero-shot perplexities of a trained checkpoint (Table 2): the runner loads the
    run that the experiment's ``upstream:`` names (table1's variant of the same name)."""

    Params = ZeroShotParams
    trainable = False

    def check_upstream(self, upstream: Any) -> None:
        trained = getattr(upstream.task.params, "tokenizer", None)
        if trained != self.params.tokenizer:
            raise ConfigError(
                f"task.tokenizer: {self.params.tokenizer!r} differs from the one the checkpoint "
                f"was trained with, {trained!r} ({upstream.experiment}/{upstream.variant})"
            )

    def data_spec(self) -> DataSpec:
        tok = get_tokenizer(self.params.tokenizer)
        return DataSpec(tok.num_classes, self.params.block_size, bos_id=tok.bos_id)

    def _source(self, name: str) -> TextSource:
        source = ZERO_SHOT[name]
        if self.params.data_dir is None:
            return source
        files = sorted(Path(self.params.data_dir).glob(f"{name}.*"))
        if not files:
            raise FileNotFoundError(f"{self.params.data_dir}: no {name}.parquet/.jsonl file")
        return replace(source, path=str(files[0]))

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        p = self.params
        tok = get_tokenizer(p.tokenizer)
        metrics = []
        for name in p.sets:
            blocks = tokenized_blocks(
                self._source(name),
                tok,
                p.block_size,
                num_proc=p.num_proc,
                group_docs=p.group_docs,
                doc_eos=p.doc_eos,
            )
            chosen = subset(blocks.blocks.shape[0], p.eval_blocks)
            per_block = block_nll(
                model,
                blocks.blocks[chosen],
                passes=p.eval_passes,
                batch=p.eval_batch,
                seed=eval_seed("zero_shot.likelihood", ctx.seed),
                device=ctx.device,
                desc=f"{name} NLL",
                strata=p.eval_strata,
                precision=p.network_precision,
                sharding=sharding_of(ctx),
                stage=f"zs_{name}",
            )
            card = {
                "split": f"{name} ({ZERO_SHOT[name].split})",
                "blocks": len(chosen),
                "checkpoint_run": ctx.upstream_run,
                "ema": ctx.ema,
                "network_precision": p.network_precision,
            }
            tokens = scored_tokens(model, p.block_size)
            metrics += nll_metrics(f"zs_{name}", per_block, tokens, card)
        return EvalOutput(metrics)
