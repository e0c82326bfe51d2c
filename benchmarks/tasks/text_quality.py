"""Sample quality of the text task's decoded samples, under the run's judge (task.judge).

Three numbers, each a :class:`Metric` whose card names the judge (model or run, its
tokenizer, revision or run id), the retokenization and first-EOS rule, the batch and the
samples (:mod:`benchmarks.metrics` gives the conventions and their sources):

* ``sample_gen_ppl``: generative perplexity, exp(sum of the judge's NLL over the scored
  tokens / their number), the N texts re-encoded by the judge's tokenizer, cut to
  task.block_size tokens (MDLM's model.length), padded with EOS per group of
  task.judge_group texts (0: all N in one group, MDM-Prime's evaluation) and scored
  task.judge_batch at a time;
* ``sample_entropy``: the mean over samples of the unigram entropy of each retokenized
  sample, in nats (BD3-LM's unit); the card's ``value_bits`` is H / ln 2, MDM-Prime's unit;
* ``sample_mauve`` (task.mauve_references = R > 0): MAUVE of the N samples against R
  validation blocks, evenly spaced and decoded as the samples are, both embedded by the
  judge (its final hidden state at each text's last token; MDM-Prime embeds with a
  sentence-transformer).

Each sample's NLL sum and scored tokens (whose sums are the gen PPL's) and entropy are
kept as an artifact (:data:`PER_SAMPLE_ARTIFACT`), from which a report can put a standard
error on a difference of gen PPLs. The judge comes from :mod:`benchmarks.tasks.text_judge`;
the numbers are computed on the main rank once every rank has the gathered samples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.run_config import RunConfig
from ..core import ConfigError, EvalContext, Metric
from ..data.tokenizers import get_tokenizer
from ..metrics.entropy import judge_unigram_entropy
from ..metrics.gen_ppl import GenPPLResult, generative_perplexity, scored_positions
from ..metrics.judge import Judge
from ..metrics.mauve_metric import mauve_score
from ..metrics.retokenize import retokenize
from ..safe_files import atomic_write
from .text_judge import build_judge
from .text_params import TextLMParams

__all__ = ["PER_SAMPLE_ARTIFACT", "reference_texts", "sample_quality_metrics"]

log = logging.getLogger("primebench")

# Per-sample judge values (artifact sub-directory, file): nll_sum (N,) nats over each
# sample's scored tokens, tokens (N,) their number, entropy (N,) nats.
PER_SAMPLE_ARTIFACT = ("samples", "gen_ppl_per_sample.npz")
GEN_PPL_NOTE = (
    "MDLM and MDM-Prime: this rule and a mean pooled over tokens; BD3-LM (metrics.py "
    "record_generative_perplexity) scores no EOS and its reported value (scripts/"
    "log_sample_stats.py) is the mean over samples of each sample's perplexity"
)
MAUVE_NOTE = (
    "MDM-Prime embeds with the SentenceTransformer all-mpnet-base-v2 (text/utils/"
    "eval_utils.py compute_mauve) and scores prefix-conditioned samples; here the judge's "
    "features, unconditional samples against held-out validation blocks"
)


def _evenly_spaced(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def reference_texts(params: TextLMParams, validation: np.ndarray) -> list[str]:
    """task.mauve_references validation blocks ((n, L) ids), evenly spaced, decoded as the
    samples are (codes of the tokenizer only; bytes drop their NUL BOS/EOS)."""
    n, k = validation.shape[0], params.mauve_references
    if k > n:
        raise ConfigError(f"task.mauve_references: {k} exceeds the {n} validation blocks")
    tok = get_tokenizer(params.tokenizer)
    rows = validation[_evenly_spaced(n, k)]
    return [tok.decode([int(i) for i in row if i < tok.num_classes]) for row in rows]


def _mauve(
    texts: Sequence[str], params: TextLMParams, validation: np.ndarray, judge: Judge
) -> Metric | None:
    """sample_mauve's value and its MAUVE card (None when fewer than 2 samples have a token)."""
    kept = [t for t, row in zip(texts, judge.encode(texts, 1), strict=True) if row]
    if len(kept) < 2:
        log.warning(
            "sample_mauve: %d of %d samples have a token; not computed", len(kept), len(texts)
        )
        return None
    references = reference_texts(params, validation)
    featurizer = (
        f"{judge.name}: final hidden state (after the last LayerNorm) at each text's last "
        f"token, texts cut to {judge.context_size} tokens"
    )
    result = mauve_score(judge.features(kept), judge.features(references), featurizer=featurizer)
    card = {
        **result.card(),
        "references_source": (
            f"{len(references)} {params.dataset} validation blocks, evenly spaced, decoded "
            "as the samples"
        ),
        "samples_without_tokens": len(texts) - len(kept),
        "differences": MAUVE_NOTE,
    }
    return Metric("sample_mauve", result.value, card)


class _Recorded:
    """``judge`` with each token_nll call's (ids, NLL) kept on the CPU, in call order."""

    def __init__(self, judge: Judge):
        self.judge, self.calls = judge, []
        self.name, self.eos_id, self.context_size = judge.name, judge.eos_id, judge.context_size

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        return self.judge.encode(texts, max_length)

    def token_nll(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        nll = self.judge.token_nll(ids, attention_mask)
        self.calls.append((ids.cpu(), nll.detach().double().cpu()))
        return nll

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return self.judge.features(texts)


def _per_sample(
    texts: Sequence[str], judged: _Recorded, params: TextLMParams, result: GenPPLResult
) -> dict[str, np.ndarray] | None:
    """Each sample's NLL sum and scored tokens from the recorded calls, walked as
    :func:`generative_perplexity` makes them (groups, batches, chunks; a dropped remainder
    scores 0 tokens); None unless the calls and the totals match the result's."""
    n, calls = len(texts), iter(judged.calls)
    group = params.judge_group or n
    nll_sum, tokens = np.zeros(n), np.zeros(n, dtype=np.int64)
    for g in range(0, n, group):
        rows = retokenize(texts[g : g + group], judged.judge, params.block_size).ids
        size = min(params.judge_batch, rows.shape[0])
        for start in range(0, rows.shape[0] // size * size, size):
            at = slice(g + start, g + start + size)
            for chunk in rows[start : start + size].split(judged.context_size, dim=-1):
                if chunk.shape[-1] < 2:
                    continue
                ids, nll = next(calls, (None, None))
                if ids is None or not torch.equal(ids, chunk):
                    return None
                scored = scored_positions(chunk, judged.eos_id)
                nll_sum[at] += torch.where(scored, nll, 0.0).sum(-1).numpy()
                tokens[at] += scored.sum(-1).numpy()
    whole = next(calls, None) is None and int(tokens.sum()) == result.tokens
    if not whole or not math.isclose(float(nll_sum.sum()), result.nll_sum, rel_tol=1e-9):
        return None
    return {"nll_sum": nll_sum, "tokens": tokens}


def _save_per_sample(values: dict[str, np.ndarray], ctx: EvalContext) -> Path:
    path = ctx.artifact_dir / PER_SAMPLE_ARTIFACT[1]
    with atomic_write(path, "per-sample judge values") as handle:
        np.savez(handle, **values)
    return path


def sample_quality_metrics(
    params: TextLMParams,
    config: RunConfig,
    texts: Sequence[str],
    validation: np.ndarray,
    ctx: EvalContext,
    sampling_card: dict[str, Any],
) -> tuple[list[Metric], list[tuple[str, Path]]]:
    """sample_gen_ppl, sample_entropy and (task.mauve_references > 0) sample_mauve of the
    decoded ``texts``, and the per-sample artifact, on the main rank (nothing elsewhere,
    or without task.judge); each card is ``sampling_card`` (the sampler's settings) with
    the judge's and the metric's."""
    if params.judge is None or not ctx.is_main:
        return [], []
    judge, about = build_judge(params, config, ctx.runs_dir, ctx.device)
    log.info("scoring %d samples with the judge %s", len(texts), judge.name)
    group = params.judge_group or None
    base = {
        **sampling_card,
        "judge": judge.name,
        "judge_setting": params.judge,
        **about,
        "max_length": params.block_size,
        "judge_group": params.judge_group or "all samples",
    }
    judged = _Recorded(judge)
    ppl = generative_perplexity(
        texts, judged, max_length=params.block_size, batch_size=params.judge_batch, group=group
    )
    entropy = judge_unigram_entropy(texts, judge, max_length=params.block_size, group=group)
    entropy_card = {
        **base,
        **entropy.card(),
        "value_bits": entropy.value / math.log(2),
        "units": "nats (BD3-LM's); value_bits: bits, MDM-Prime's (text/utils/eval_utils.py)",
    }
    metrics = [
        Metric("sample_gen_ppl", ppl.value, {**base, **ppl.card(), "code_bases": GEN_PPL_NOTE}),
        Metric("sample_entropy", entropy.value, entropy_card),
    ]
    if params.mauve_references:
        mauve = _mauve(texts, params, validation, judge)
        if mauve is not None:
            metrics.append(Metric(mauve.name, mauve.value, {**base, **mauve.card}))
    per_sample = _per_sample(texts, judged, params, ppl)
    if per_sample is None:
        log.warning("sample_gen_ppl: per-sample values do not add up to the total; not kept")
        return metrics, []
    per_sample["entropy"] = entropy.per_sample
    return metrics, [(PER_SAMPLE_ARTIFACT[0], _save_per_sample(per_sample, ctx))]
