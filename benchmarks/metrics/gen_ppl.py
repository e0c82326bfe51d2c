"""Generative perplexity: the NLL of samples under a judge language model.

MDLM's ``compute_generative_perplexity`` (diffusion.py; the same code in MDM-Prime's
text/diffusion.py and text/utils/eval_utils.py) is called on a list of decoded texts
and adds to a running metric; each call:

1. retokenizes its texts for the judge (:mod:`.retokenize`): (n, T) ids, right-padded
   with EOS to the call's longest row, T <= max_length (the sampler's sequence length);
2. takes them ``batch_size`` at a time (batch_size = min(perplexity_batch_size, n));
   ``num_batches = n // batch_size``, so the last n mod batch_size texts are not scored;
3. cuts each batch along the length into chunks of ``context_size`` tokens (1024 for
   GPT-2; ``torch.split``, the last chunk shorter); each chunk is scored alone, with no
   context from the chunk before, so a chunk's first token is never scored;
4. in a chunk x (b, t): nll_j = -log p(x_{j+1} | x_{<=j}) for j = 0..t-2, and position
   j+1 is scored iff x_{j+1} != EOS or x_{j+1} is the chunk's first EOS:

       scored = ((x == EOS).cumsum(-1) == 1) | (x != EOS),  then [:, 1:]

   (their ``first_eos[..., 1:] + token_mask[..., 1:]``: the sum of two bool tensors is
   their OR). So every non-EOS token is scored, text after an EOS included; the first
   EOS is scored (a text that ends before T: its EOS, or the first padding EOS); later
   EOS and the rest of the EOS padding are not. The first EOS may sit at position 0 (a
   sample that starts with BOS = EOS): it is context there, and no EOS of that chunk is
   scored at all;
5. adds sum(nll * scored) and sum(scored) to the metric (torchmetrics ``MeanMetric``
   with the mask as weight), which reports over all calls

       Gen PPL = exp( sum_scored nll / #scored ),

   a mean over scored tokens pooled over all samples, not a mean over samples.

Which texts share a call decides the padding, hence whether a row without EOS gets a
scored padding EOS: MDM-Prime's evaluation passes all 5,000 samples in one call
(``group=None`` here), MDLM's ``sample_eval`` one sampling batch per call
(``loader.eval_batch_size``, 1 in its README: ``group=1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .judge import Judge
from .retokenize import retokenize

__all__ = ["GenPPLResult", "generative_perplexity", "scored_positions"]

# What MDLM's code does differently, for the card.
_DIFFERENCES = (
    "sums accumulated in float64 (MDLM: torchmetrics MeanMetric in float32)",
    "unscored positions are excluded by selection, not multiplied by 0 (same value "
    "unless the judge gives an infinite NLL there)",
)


@dataclass(frozen=True)
class GenPPLResult:
    value: float  # exp(nll_sum / tokens)
    nll_sum: float  # nats, over scored tokens
    tokens: int  # scored tokens
    samples: int  # texts given
    samples_scored: int  # texts in the scored batches
    batch_size: int
    group: int  # texts retokenized (padded) together per call
    max_length: int
    judge: str
    context_size: int
    differences: tuple[str, ...] = field(default=_DIFFERENCES)

    def card(self) -> dict[str, object]:
        return {
            "metric": "generative perplexity",
            "value": self.value,
            "nll_sum_nats": self.nll_sum,
            "scored_tokens": self.tokens,
            "judge": self.judge,
            "retokenization": (
                f"decoded texts re-encoded by the judge's tokenizer, cut at the right to "
                f"{self.max_length} tokens, right-padded with EOS to the longest row of "
                f"each call of {self.group} texts"
            ),
            "context": (
                f"rows cut into chunks of {self.context_size} tokens, each scored alone; "
                "a chunk's first token is not scored"
            ),
            "eos": (
                "non-EOS tokens and the first EOS of each chunk are scored; later EOS "
                "and EOS padding are not (MDLM's first_eos + token_mask)"
            ),
            "mean": "over scored tokens pooled over all samples: exp(nll_sum / tokens)",
            "batch_size": self.batch_size,
            "samples": self.samples,
            "samples_scored": self.samples_scored,
            "differences_from_mdlm": list(self.differences),
        }


def scored_positions(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """(B, t) chunk -> (B, t - 1) bool, True where ids[:, 1:] is scored (step 4 above)."""
    is_eos = ids == eos_id
    return ((is_eos.long().cumsum(-1) == 1) | ~is_eos)[:, 1:]


def _score_call(
    texts: Sequence[str], judge: Judge, max_length: int, batch_size: int, drop_remainder: bool
) -> tuple[float, int, int]:
    """One call of MDLM's function (steps 1-4): (nll sum, scored tokens, texts scored)."""
    rows = retokenize(texts, judge, max_length)
    n = rows.ids.shape[0]
    size = min(batch_size, n)
    stop = (n // size) * size if drop_remainder else n
    nll_sum, count = 0.0, 0
    for start in range(0, stop, size):
        ids = rows.ids[start : start + size]
        mask = rows.attention_mask[start : start + size]
        for chunk, mask_chunk in zip(
            ids.split(judge.context_size, dim=-1),
            mask.split(judge.context_size, dim=-1),
            strict=True,
        ):
            if chunk.shape[-1] < 2:
                continue  # no next token to score
            scored = scored_positions(chunk, judge.eos_id)
            nll = judge.token_nll(chunk, mask_chunk)
            if nll.shape != scored.shape:
                raise ValueError(
                    f"judge {judge.name}: token_nll gave {tuple(nll.shape)}, "
                    f"expected {tuple(scored.shape)}"
                )
            nll_sum += float(nll.double()[scored.to(nll.device)].sum())
            count += int(scored.sum())
    return nll_sum, count, stop


@torch.no_grad()
def generative_perplexity(
    texts: Sequence[str],
    judge: Judge,
    *,
    max_length: int,
    batch_size: int = 8,
    group: int | None = None,
    drop_remainder: bool = True,
) -> GenPPLResult:
    """Gen PPL of decoded ``texts`` under ``judge`` (see the module docstring).

    Args:
        texts: N decoded samples (special tokens left in, as ``batch_decode`` gives).
        judge: the scoring model and tokenizer.
        max_length: retokenized rows are cut to this many tokens (MDLM: model.length, the
            sampler's sequence length).
        batch_size: texts per judge call (MDLM and BD3-LM configs: 8; MDM-Prime: 2); the
            value depends on it only through the dropped remainder.
        group: texts per call of MDLM's function, i.e. retokenized and padded together
            (None: all N, as MDM-Prime's evaluation; 1: each alone, as MDLM's README
            ``sample_eval`` with eval_batch_size 1).
        drop_remainder: as MDLM, score only the first (n // batch_size) * batch_size texts
            of a call; False scores every text (written on the card as a difference).
    """
    if isinstance(texts, str):
        raise TypeError("texts: expected a sequence of strings, got one string")
    if len(texts) == 0:
        raise ValueError("texts: expected at least one sample")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    if group is not None and group < 1:
        raise ValueError(f"group: expected None or a positive integer, got {group}")
    if judge.context_size < 2:
        raise ValueError(f"judge {judge.name}: context_size must be at least 2")
    n = len(texts)
    group = n if group is None else group
    nll_sum, count, scored_samples = 0.0, 0, 0
    for start in range(0, n, group):
        s, c, k = _score_call(
            texts[start : start + group], judge, max_length, batch_size, drop_remainder
        )
        nll_sum, count, scored_samples = nll_sum + s, count + c, scored_samples + k
    if count == 0:
        raise ValueError("texts: no token to score (every retokenized row is shorter than 2)")
    differences = _DIFFERENCES
    if not drop_remainder:
        differences += ("every text scored (MDLM drops a call's last n mod batch_size)",)
    return GenPPLResult(
        value=math.exp(nll_sum / count),
        nll_sum=nll_sum,
        tokens=count,
        samples=n,
        samples_scored=scored_samples,
        batch_size=min(batch_size, group),
        group=min(group, n),
        max_length=max_length,
        judge=judge.name,
        context_size=judge.context_size,
        differences=differences,
    )
