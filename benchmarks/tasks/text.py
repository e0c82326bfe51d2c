"""Text language modelling: Tables 1 and 2 (PRIME_SPEC §3.5, §7.1, §7.2, §8.1, §8.2, §8.6).

``text-lm`` trains on wrapped blocks of OpenWebText (``paper`` scale) or of the embedded
Shakespeare corpus (``cpu`` scale) and evaluates on the validation blocks:

* AR: the exact next-token NLL;
* MDLM / MDLM-Prime: the published estimator and the valid marginal bound (they agree
  for ell = 1), each averaged over ``eval_passes`` Monte Carlo passes with times
  stratified over the *whole* evaluation set or within each evaluation batch
  (``eval_strata``) from a fixed seed, accumulated in float64, with a standard error
  over blocks;
* samples from the model, ``sample_batch`` per sampler call (idle-step ratio and NFE for
  the diffusion models, :mod:`benchmarks.tasks.text_samples`), stored as an artifact.

The zero-shot task (Table 2) is in :mod:`benchmarks.tasks.zero_shot`, the Table 1
report in :mod:`benchmarks.reports.text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from prime import MaskedDiffusion, SamplerConfig

from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Metric, Task, require_at_least
from ..data.corpora import load_blocks
from ..data.loader import ArrayRows
from ..data.row_order import RowOrder
from ..data.tokenizers import get_tokenizer
from ..precision import FASTEST, fastest_network_precision
from ..registry import TASKS
from ..streams import eval_seed
from .likelihood import (
    PER_BLOCK_ARTIFACT,
    Strata,
    block_nll,
    nll_metrics,
    save_per_block,
    scored_tokens,
)
from .network_autocast import NetworkPrecision
from .text_samples import SampleRetry, draw_text_samples

__all__ = ["TextLM", "TextLMParams", "load_blocks", "subset"]

Dtype = Literal["float32", "float64"]


def subset(n: int, limit: int) -> np.ndarray:
    """Evenly spaced indices of ``limit`` blocks out of ``n`` (all when limit is 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@dataclass(frozen=True)
class TextLMParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "eval_strata",
        "sample_batch",
        "group_docs",
        "block_specials",
        "row_order",
        "network_precision",
        "heldout_doc_eos",
        "sample_retry",
    )

    dataset: Literal["shakespeare", "openwebtext"] = "shakespeare"
    """The corpus: the 42 works of the shakespeare package (every tenth is validation) or
    OpenWebText (the paper's, PRIME_SPEC §7.1)."""
    path: str | None = None
    """OpenWebText from a local copy (parquet/jsonl) or another hub id; null: the hub's."""
    revision: str | None = None
    """Hub revision of the OpenWebText dataset; null: the latest."""
    tokenizer: Literal["bytes", "gpt2"] = "bytes"
    """bytes: UTF-8 bytes, C = 256, NUL as BOS/EOS; gpt2: GPT-2 BPE, C = 50257 (the paper's)."""
    block_size: int = 1024
    """L, tokens per wrapped block, [BOS] + L - 2 text tokens + [EOS] (the paper: 1024)."""
    validation_docs: int = 100_000
    """OpenWebText's last this many documents are the validation split (the paper: 100,000)."""
    num_proc: int = 1
    """Processes that tokenize the corpus (once; the blocks are cached)."""
    group_docs: int = 0
    """Documents per wrapping group, each cut into blocks on its own, its tail dropped
    (benchmarks.data.blocks); 0: the whole split is one stream (the authors': 1000)."""
    block_specials: bool = True
    """Blocks of [BOS] + L - 2 text tokens + [EOS]; false: L text tokens (BD3-LM's)."""
    heldout_doc_eos: bool = True
    """An EOS after each document in the held-out rows scored during training (the
    validation documents, wrapped as the other blocks: BD3-LM's window search); false:
    the documents' tokens alone (bd3lms's training validation). The evaluation keeps EOS."""
    row_order: RowOrder = "replacement"
    """How a training step takes its rows: replacement, drawn uniformly per step; or
    epoch_permutation, the next rows of per-epoch permutations (the authors' loader)."""
    eval_blocks: int = 0
    """Validation blocks, evenly spaced, whose NLL is estimated; 0: every validation block."""
    eval_passes: int = 4
    """Monte Carlo passes (stratified time draws) averaged per block; AR models take one."""
    eval_batch: int = 16
    """Blocks per network call in the likelihood evaluation (with eval_strata batch, also
    the rows whose times are stratified together)."""
    eval_strata: Strata = "set"
    """How a pass stratifies its times: set, over every block (x time block) of the
    evaluation set from one seed; batch, within each batch of eval_batch blocks from a
    seed per batch (MDLM's and BD3-LM's validation: antithetic times per batch)."""
    sample_count: int = 4
    """Sequences sampled for the idle-step ratio, NFE and the stored sample texts."""
    sample_batch: int = 0
    """Sequences per sampler call, each call from its own seed (0: all in one call); it
    must divide sample_count. Part of the run id: a cached (idle) step needs the whole
    batch idle, so NFE depends on it, and the samples on the seeds (the paper's: 25)."""
    sample_steps: int = 128
    """T, steps of the sampler's time grid (per block for block diffusion; the paper's
    samples: 512); unused with sample_first_hitting and by AR models."""
    sample_top_p: float = 1.0
    """Nucleus filtering of the token distribution when sampling; 1: off (the paper's
    sample commands: 0.95)."""
    sampling_dtype: Dtype = "float64"
    """Dtype of the probabilities and the categorical noise; float32 noise truncates the
    Gumbel tail and lowers the effective temperature (the paper: float64)."""
    sample_first_hitting: bool = False
    """Reveal one sub-token per network call at its exact time (no grid, no idle steps)."""
    sample_retry: SampleRetry = "none"
    """Redraw degenerate batches: none, or bd3lms (BD3-LM's, benchmarks.tasks.sample_retry)."""
    network_precision: NetworkPrecision = "float32"
    """Precision of the network's calls in the likelihood evaluation and the sampler
    (training: train.precision): bfloat16 runs them under bfloat16 autocast (the authors'
    text networks' hard-coded one; slow where the machine does not compute bfloat16
    natively) and hands their output on in float32, so the estimators' sums and the
    sampler's probabilities and noise (sampling_dtype) compute as in float32
    (benchmarks.tasks.network_autocast). fastest: bfloat16 where the machine computes it
    natively, else float32, chosen before the run id is computed (benchmarks.precision)."""

    def __post_init__(self) -> None:
        if self.network_precision == FASTEST:
            object.__setattr__(self, "network_precision", fastest_network_precision())
        if self.block_size < 3:
            raise ConfigError(f"task.block_size: must be >= 3, got {self.block_size}")
        require_at_least(
            self,
            "task",
            (
                "eval_passes",
                "eval_batch",
                "sample_count",
                "sample_steps",
                "num_proc",
                "validation_docs",
            ),
        )
        require_at_least(self, "task", ("group_docs",), 0)
        if self.sample_batch < 0 or (self.sample_batch and self.sample_count % self.sample_batch):
            raise ConfigError(
                f"task.sample_batch: expected 0 (one call) or a divisor of sample_count "
                f"{self.sample_count}, got {self.sample_batch}"
            )
        if not 0.0 < self.sample_top_p <= 1.0:
            raise ConfigError(f"task.sample_top_p: must be in (0, 1], got {self.sample_top_p}")


@TASKS.register("text-lm")
class TextLM(Task):
    Params = TextLMParams

    def _blocks(self, split: str, doc_eos: bool = True) -> np.ndarray:
        p = self.params
        return load_blocks(
            p.dataset,
            split,
            p.tokenizer,
            p.block_size,
            path=p.path,
            revision=p.revision,
            validation_docs=p.validation_docs,
            num_proc=p.num_proc,
            group_docs=p.group_docs,
            specials=p.block_specials,
            doc_eos=doc_eos,
        ).blocks

    def data_spec(self) -> DataSpec:
        tok = get_tokenizer(self.params.tokenizer)
        return DataSpec(tok.num_classes, self.params.block_size, bos_id=tok.bos_id)

    def train_rows(self) -> ArrayRows:
        return ArrayRows(self._blocks("train"), order=self.params.row_order)

    def validation_rows(self) -> ArrayRows:
        return ArrayRows(self._blocks("validation", self.params.heldout_doc_eos))

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        p = self.params
        val = self._blocks("validation")
        chosen = subset(val.shape[0], p.eval_blocks)
        per_block = block_nll(
            model,
            val[chosen],
            passes=p.eval_passes,
            batch=p.eval_batch,
            seed=eval_seed("text.likelihood", ctx.seed),
            device=ctx.device,
            desc="validation NLL",
            strata=p.eval_strata,
            precision=p.network_precision,
        )
        card = {
            "split": f"{p.dataset} validation",
            "blocks": len(chosen),
            "of_blocks": int(val.shape[0]),
            "block_size": p.block_size,
            "tokenizer": p.tokenizer,
            "ema": ctx.ema,
            "dtype": "float64 accumulation",
            "network_precision": p.network_precision,
        }
        if "exact" not in per_block:
            card.update(
                passes=p.eval_passes,
                strata=p.eval_strata,
                seed=eval_seed("text.likelihood", ctx.seed),
                **model.evaluation_card(),
            )
        tokens = scored_tokens(model, p.block_size)
        metrics = nll_metrics("val", per_block, tokens, card)
        metrics += [
            Metric(key, float(card[key]), card)
            for key in ("training_window_beta", "training_window_omega")
            if key in card
        ]
        per_block_path = save_per_block(
            ctx.artifact_dir, per_block, tokens, chosen, eval_seed("text.likelihood", ctx.seed)
        )
        sample_metrics, path = self._samples(model, ctx)
        artifacts = [("samples", path), (PER_BLOCK_ARTIFACT[0], per_block_path)]
        return EvalOutput(metrics + sample_metrics, artifacts=artifacts)

    def _samples(self, model: torch.nn.Module, ctx: EvalContext):
        p = self.params
        tok = get_tokenizer(p.tokenizer)
        dtype = torch.float64 if p.sampling_dtype == "float64" else torch.float32
        top_p = p.sample_top_p if p.sample_top_p < 1.0 else None
        card = {
            "samples": p.sample_count,
            "sample_batch": p.sample_batch or p.sample_count,
            "sampling_dtype": p.sampling_dtype,
            "top_p": p.sample_top_p,
            "network_precision": p.network_precision,
            "ema": ctx.ema,
        }
        sampler = SamplerConfig(
            steps=p.sample_steps,
            top_p=top_p,
            sampling_dtype=dtype,
            first_hitting=p.sample_first_hitting,
            # MDLM ends with the most likely tokens (its sampler and the authors' at ell = 1);
            # MDLM-Prime's last step draws them; block diffusion keeps BD3-LM's sampler.
            final_argmax=type(model) is MaskedDiffusion and model.ell == 1,
        )
        seed = eval_seed("text.samples", ctx.seed)
        result = draw_text_samples(
            model,
            p.sample_count,
            p.sample_batch,
            p.block_size,
            sampler,
            seed,
            ctx.device,
            p.network_precision,
            p.sample_retry,
        )
        metrics = [Metric("sample_nfe", result.nfe, card)]
        if model.time_draws(p.block_size):  # a diffusion model: steps, blocks, idle steps
            card = {
                **card,
                "steps": "first hitting" if p.sample_first_hitting else p.sample_steps,
                "blocks": model.num_blocks(p.block_size),
            }
            closed_form = (
                0.0
                if p.sample_first_hitting
                else model.expected_idle_ratio(p.sample_steps, p.block_size)
            )
            metrics = [
                Metric("sample_idle_ratio", float(result.idle_ratio.mean()), card),
                Metric("sample_idle_ratio_closed_form", closed_form, card),
                Metric("sample_nfe", result.nfe, card),
                Metric("sample_invalid_rate", result.invalid_rate, card),
            ]
        metrics += result.retry_metrics(card)
        rows = result.tokens
        texts = [tok.decode([i for i in row.tolist() if i < tok.num_classes]) for row in rows]
        path = ctx.artifact_dir / "samples.txt"
        path.write_text("\n\n=====\n\n".join(texts), encoding="utf-8")
        return metrics, path
