"""A judge made of this suite's autoregressive model and tokenizer (the cpu scale).

Where GPT-2 Large cannot be had, an :class:`baselines.AutoregressiveLM` trained by the
suite judges the samples, with the suite's tokenizer (``bytes`` at the cpu scale).

* encode: the tokenizer's ids; a literal EOS string in the text (``<|endoftext|>`` for
  GPT-2) becomes the EOS id, as a Hugging Face tokenizer splits out special tokens, and
  the pieces between are encoded alone. The ``bytes`` tokenizer drops NUL (its EOS), so
  its rows hold no EOS but the padding.
* token_nll: ``AutoregressiveLM.token_nll`` on the (B, T) ids, in float32. The model
  takes no attention mask; its attention is causal, so on right-padded rows the padding
  cannot change the NLL of earlier positions (the mask is checked to be right-padded).
* features: the output of the network's final LayerNorm (``norm_out``) at each text's
  last token, read by a forward hook, as MAUVE's featurizer reads GPT-2's final (ln_f)
  hidden state: (N, D). For the suite's DiT, the adaLN shift and scale after
  ``norm_out`` are the same at every token (no time input) and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from baselines import AutoregressiveLM

from ..data.tokenizers import Tokenizer
from .judge import check_right_padded
from .retokenize import pad_right

__all__ = ["EOS_TEXT", "SuiteJudge"]

# The text form of a tokenizer's EOS in decoded samples (bytes drop theirs when decoding).
EOS_TEXT = {"gpt2": "<|endoftext|>", "bytes": None}


class SuiteJudge:
    """Judge from a suite ``AutoregressiveLM`` and the tokenizer it was trained with.

    Args:
        model: the autoregressive model (put in eval mode here: dropout off).
        tokenizer: the suite tokenizer (``benchmarks.data.tokenizers.get_tokenizer``).
        context_size: longest sequence scored in one call (the model's training length).
        label: names the weights on the card (e.g. the run or checkpoint digest).
        batch_size: texts per network call in :meth:`features`.
    """

    def __init__(
        self,
        model: AutoregressiveLM,
        tokenizer: Tokenizer,
        *,
        context_size: int,
        label: str,
        batch_size: int = 8,
    ):
        if model.num_classes != tokenizer.num_classes:
            raise ValueError(
                f"tokenizer {tokenizer.name!r} has {tokenizer.num_classes} classes, "
                f"the model {model.num_classes}"
            )
        if context_size < 2:
            raise ValueError(f"context_size: expected at least 2, got {context_size}")
        if not isinstance(getattr(model.network, "norm_out", None), torch.nn.Module):
            raise ValueError("model.network: expected a final LayerNorm module 'norm_out'")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.context_size = context_size
        self.eos_id = tokenizer.eos_id
        self.eos_text = EOS_TEXT.get(tokenizer.name)
        self.batch_size = batch_size
        self.name = (
            f"suite AR model {label} ({type(model.network).__name__}) + tokenizer "
            f"{tokenizer.name} ({tokenizer.fingerprint})"
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Ids of each text (EOS strings -> EOS id), cut to ``max_length``."""
        rows = []
        for text in texts:
            pieces = text.split(self.eos_text) if self.eos_text else [text]
            encoded = self.tokenizer.encode_batch(pieces)
            row = list(encoded[0])
            for piece in encoded[1:]:
                row += [self.eos_id, *piece]
            rows.append(row[:max_length] if max_length is not None else row)
        return rows

    @torch.no_grad()
    def token_nll(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T - 1) nats; see the module docstring for the mask."""
        check_right_padded(attention_mask)
        if ids.shape != attention_mask.shape:
            raise ValueError(f"ids {tuple(ids.shape)} and mask {tuple(attention_mask.shape)}")
        return self.model.token_nll(ids.to(self.device)).float()

    @torch.no_grad()
    def features(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32: ``norm_out`` output at each text's last token (texts cut to
        ``context_size`` tokens)."""
        rows = self.encode(texts, self.context_size)
        empty = [i for i, r in enumerate(rows) if not r]
        if empty:
            raise ValueError(f"texts {empty[:5]}: no token to take a feature from")
        captured: list[torch.Tensor] = []
        hook = self.model.network.norm_out.register_forward_hook(
            lambda module, args, out: captured.append(out)
        )
        feats = []
        try:
            for start in range(0, len(rows), self.batch_size):
                batch = pad_right(rows[start : start + self.batch_size], self.eos_id)
                captured.clear()
                self.model.network(batch.ids.to(self.device).unsqueeze(-1), None)
                hidden = captured[-1].float()  # (B, T, D)
                last = (batch.lengths - 1).to(hidden.device)
                feats.append(hidden[torch.arange(hidden.shape[0]), last].cpu())
        finally:
            hook.remove()
        return torch.cat(feats).numpy()
