"""Text language modelling: Tables 1 and 2 (docs/method.md §3.5, §7.1, §7.2, §8.1, §8.2, §8.6).

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

import numpy as np
import torch

from prime import MaskedDiffusion, SamplerConfig

from ..core import DataSpec, EvalContext, EvalOutput, Metric, Task
from ..data.corpora import load_blocks
from ..data.loader import ArrayRows
from ..data.tokenizers import TOKENIZER_TYPES, get_tokenizer
from ..evaluation.shards import sharding_of
from ..registry import TASKS
from ..safe_files import atomic_write
from ..streams import eval_seed
from .likelihood import PER_BLOCK_ARTIFACT, block_nll, nll_metrics, save_per_block, scored_tokens
from .sample_shards import speed_metrics
from .text_judge import check_judge
from .text_params import TextLMParams
from .text_quality import sample_quality_metrics
from .text_samples import draw_text_samples

__all__ = ["TextLM", "subset"]


def subset(n: int, limit: int) -> np.ndarray:
    """Evenly spaced indices of ``limit`` blocks out of ``n`` (all when limit is 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


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

    @classmethod
    def declared_data(cls, params: TextLMParams) -> DataSpec:
        tok = TOKENIZER_TYPES[params.tokenizer]
        return DataSpec(tok.num_classes, params.block_size, bos_id=tok.bos_id)

    def data_spec(self) -> DataSpec:
        tok = get_tokenizer(self.params.tokenizer)
        return DataSpec(tok.num_classes, self.params.block_size, bos_id=tok.bos_id)

    def train_rows(self) -> ArrayRows:
        check_judge(self.params, self.config)  # a judge that cannot be had fails before training
        return ArrayRows(self._blocks("train"), order=self.params.row_order)

    def validation_rows(self) -> ArrayRows:
        return ArrayRows(self._blocks("validation", self.params.heldout_doc_eos))

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        p = self.params
        check_judge(p, self.config, ctx.runs_dir, evaluation=True)  # before any sample
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
            sharding=sharding_of(ctx),
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
        sample_metrics, sample_artifacts = self._samples(model, ctx, val)
        artifacts = [*sample_artifacts, (PER_BLOCK_ARTIFACT[0], per_block_path)]
        return EvalOutput(metrics + sample_metrics, artifacts=artifacts)

    def _samples(self, model: torch.nn.Module, ctx: EvalContext, val: np.ndarray):
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
            sharding_of(ctx),
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
        metrics += speed_metrics(
            list(result.results), card, ctx.device, sharding_of(ctx).ranks.size
        )
        rows = result.tokens
        texts = [tok.decode([i for i in row.tolist() if i < tok.num_classes]) for row in rows]
        quality, quality_artifacts = sample_quality_metrics(p, self.config, texts, val, ctx, card)
        path = ctx.artifact_dir / "samples.txt"
        if ctx.is_main:
            with atomic_write(path, "samples artifact") as handle:
                handle.write("\n\n=====\n\n".join(texts).encode("utf-8"))
        return metrics + quality, [("samples", path), *quality_artifacts]
