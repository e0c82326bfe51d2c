"""The judge of sample quality: an autoregressive model and its tokenizer.

A judge re-encodes decoded samples with its own tokenizer, scores them token by token and
embeds them for MAUVE. Shapes: ``ids`` and ``attention_mask`` are (B, T) with rows
right-padded (a row's real tokens first, then padding: mask 1...1 0...0);
``token_nll(ids, mask)`` is (B, T - 1), entry (b, j) = -log p(ids[b, j+1] | ids[b, :j+1])
in nats; ``features(texts)`` is (N, d), one row per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["Judge", "JudgeUnavailableError", "check_right_padded"]


class JudgeUnavailableError(RuntimeError):
    """The judge's package or weights cannot be had on this machine."""


@runtime_checkable
class Judge(Protocol):
    name: str
    """What a metric card names: model, tokenizer and revision."""
    eos_id: int
    """The end-of-text id; it is also the padding id (as MDLM pads GPT-2 with EOS)."""
    context_size: int
    """Longest sequence the model scores in one call; longer ones are cut into chunks."""

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids of each text, at most ``max_length`` (cut at the right), no padding."""
        ...

    def token_nll(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and mask -> (B, T - 1) next-token NLL in nats, float32 or wider."""
        ...

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """(N, d) float array: final-layer hidden state at each text's last token."""
        ...


def check_right_padded(attention_mask: torch.Tensor) -> None:
    """Raise unless every row of the (B, T) mask is 1...1 0...0 (real tokens first)."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask: expected (B, T), got {tuple(attention_mask.shape)}")
    m = attention_mask.to(torch.int64)
    if bool(((m != 0) & (m != 1)).any()) or bool((m[:, 1:] > m[:, :-1]).any()):
        raise ValueError("attention_mask: expected right-padded rows of 1s then 0s")
