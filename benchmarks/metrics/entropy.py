"""Unigram entropy of samples: low values expose repetitive text a judge may score well.

For one sample with token ids x_1..x_n and counts c_v = #{i : x_i = v},

    H(x) = - sum_v (c_v / n) log(c_v / n),

and the metric is the mean of H over the N samples (each sample's own histogram, not one
histogram pooled over all samples). So a constant sample has H = 0 and a sample that
uses k symbols equally often has H = log k.

Sources: BD3-LM metrics.py, ``record_generative_perplexity`` (the "entropy" lines after
the gen-PPL update): per sample ``torch.unique`` counts and ``torch.special.entr``
(natural log: nats), summed over the batch and averaged with weight = batch size, i.e. a
mean over samples. MDM-Prime text/utils/eval_utils.py, ``_sample_entropy`` and
``compute_entropy``: the same per-sample histogram with ``math.log2`` (bits), averaged
over samples. Both count the judge's (GPT-2) ids of the retokenized rows, padding
included: all texts of a call are retokenized together (max_length = model.length, EOS
padding to the longest row; BD3-LM: the 25 samples of a sampling job, MDM-Prime: all
5,000), so a shorter row's histogram holds its EOS padding. The unit is chosen by
``base``: e (nats, BD3-LM) by default, 2 for MDM-Prime's bits (H_bits = H_nats / ln 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .judge import Judge
from .retokenize import retokenize

__all__ = ["EntropyResult", "judge_unigram_entropy", "sample_entropy", "unigram_entropy"]


@dataclass(frozen=True)
class EntropyResult:
    value: float  # mean over samples
    per_sample: np.ndarray  # (N,) float64
    base: float
    tokens: str = "the token ids given, each row counted whole"

    @property
    def unit(self) -> str:
        return {math.e: "nats", 2.0: "bits"}.get(self.base, f"log base {self.base}")

    def card(self) -> dict[str, object]:
        return {
            "metric": "unigram entropy",
            "value": self.value,
            "unit": self.unit,
            "definition": "entropy of each sample's token histogram, then the mean over samples",
            "tokens": self.tokens,
            "samples": int(self.per_sample.shape[0]),
        }


def sample_entropy(ids: Sequence[int] | torch.Tensor | np.ndarray, base: float = math.e) -> float:
    """H of one sample's (n,) token ids, in log base ``base``."""
    values = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"ids: expected a non-empty 1-D sequence, got shape {values.shape}")
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(base))


def unigram_entropy(
    token_ids: Sequence[Sequence[int]] | torch.Tensor | np.ndarray, *, base: float = math.e
) -> EntropyResult:
    """Mean over samples of H(sample); ``token_ids`` is (N, n) or N rows of any length,
    each row counted whole (padding included if it is there)."""
    if not base > 1:
        raise ValueError(f"base: expected a logarithm base > 1, got {base}")
    rows = list(token_ids)
    if not rows:
        raise ValueError("token_ids: expected at least one sample")
    per_sample = np.array([sample_entropy(r, base) for r in rows], dtype=np.float64)
    return EntropyResult(value=float(per_sample.mean()), per_sample=per_sample, base=float(base))


def judge_unigram_entropy(
    texts: Sequence[str],
    judge: Judge,
    *,
    max_length: int,
    base: float = math.e,
    group: int | None = None,
) -> EntropyResult:
    """The texts retokenized for the judge ``group`` at a time (None: all in one call, as
    MDM-Prime's ``compute_entropy``; BD3-LM: the 25 samples of a job), cut to
    ``max_length``, EOS padding to each call's longest row counted; then the mean over
    samples of :func:`sample_entropy`."""
    if group is not None and group < 1:
        raise ValueError(f"group: expected None or a positive integer, got {group}")
    group = group or max(len(texts), 1)
    rows = []
    for start in range(0, len(texts), group):
        rows += list(retokenize(texts[start : start + group], judge, max_length).ids)
    if not rows:
        raise ValueError("texts: expected at least one sample")
    result = unigram_entropy(rows, base=base)
    tokens = (
        f"ids of {judge.name}, texts retokenized {group} per call, cut to {max_length}, "
        "EOS padding of shorter rows counted"
    )
    return EntropyResult(result.value, result.per_sample, result.base, tokens)
