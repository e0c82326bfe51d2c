"""Decoded samples re-encoded for a judge, as MDLM's ``eval_retokenize`` does.

MDLM (diffusion.py, ``eval_retokenize``) calls the judge's tokenizer on the list of
decoded texts with ``truncation=True, padding=True, max_length=model.length``: each text
is encoded (for GPT-2 no BOS/EOS is added; a literal ``<|endoftext|>`` in the text becomes
the EOS id), cut at the right to ``max_length`` ids, and every row is padded at the right
to the longest row with the pad id, which is the EOS id (GPT-2 has no pad token, so they
set pad = eos). Here: the judge encodes and cuts, this module pads, giving

    ids (N, T) long, T = max_i len_i;   attention_mask (N, T), 1 on the len_i real ids.

All texts of one call are padded together (MDM-Prime's evaluation passes its 5,000
samples in one call; MDLM's validation hook one sampling batch at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .judge import Judge

__all__ = ["Retokenized", "pad_right", "retokenize"]


@dataclass(frozen=True)
class Retokenized:
    ids: torch.Tensor  # (N, T) long, right-padded with the judge's EOS id
    attention_mask: torch.Tensor  # (N, T) long, 1 on real tokens
    lengths: torch.Tensor  # (N,) long, real tokens per row


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> Retokenized:
    """Rows of ids -> (N, T) padded at the right with ``pad_id``, T the longest row."""
    if len(rows) == 0:
        raise ValueError("rows: expected at least one row of token ids")
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = int(lengths.max())
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return Retokenized(ids=ids, attention_mask=mask, lengths=lengths)


def retokenize(texts: Sequence[str], judge: Judge, max_length: int) -> Retokenized:
    """Encode ``texts`` with the judge's tokenizer, cut to ``max_length``, pad with EOS."""
    if isinstance(texts, str):
        raise TypeError("texts: expected a sequence of strings, got one string")
    if len(texts) == 0:
        raise ValueError("texts: expected at least one sample")
    if max_length < 1:
        raise ValueError(f"max_length: expected a positive token count, got {max_length}")
    rows = judge.encode(list(texts), max_length)
    if len(rows) != len(texts):
        raise ValueError(f"judge {judge.name}: encoded {len(rows)} rows for {len(texts)} texts")
    too_long = [i for i, r in enumerate(rows) if len(r) > max_length]
    if too_long:
        raise ValueError(f"judge {judge.name}: rows {too_long[:5]} exceed max_length")
    return pad_right(rows, judge.eos_id)
