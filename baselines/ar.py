"""Autoregressive baseline: the same transformer with causal attention, next-token loss.

For a block x = (x_1, ..., x_L) the model sees x_1..x_{L-1} and predicts x_2..x_L:

    NLL(x) = - sum_{i=2}^{L} log p_theta(x_i | x_<i),

exact (no bound); the first token of a block (BOS in wrapped text) is given. Reported per
predicted token, i.e. divided by L - 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prime import BatchShard, sample_categorical, top_p_filter

__all__ = ["AutoregressiveLM"]


class AutoregressiveLM(nn.Module):
    """Next-token model around a causal network.

    ``network`` maps tokens as (B, L, 1) ids (and an ignored time) to (B, L, C) logits and
    must attend causally (``prime.backbones.DiT(..., causal=True)``).
    """

    def __init__(self, network: nn.Module, num_classes: int):
        super().__init__()
        if not getattr(network, "causal", False):
            raise ValueError("the autoregressive baseline needs a causal network (causal=True)")
        self.network = network
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, L-1, C) of x_2..x_L given the prefixes, from tokens x (B, L)."""
        return self.network(x[:, :-1].unsqueeze(-1), None)

    def token_nll(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L-1) -log p(x_i | x_<i) for i = 2..L, in nats (float32 or wider)."""
        logits = self(x).float()
        return F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")

    def training_loss(
        self,
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean next-token NLL; nothing is random, so ``generator`` and ``shard`` are unused."""
        nll = self.token_nll(x0)
        return nll.mean(), {"nll": nll}

    @torch.no_grad()
    def sample(
        self,
        batch_size: int,
        seq_len: int,
        bos_id: int,
        *,
        top_p: float | None = None,
        sampling_dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling of (batch_size, seq_len) tokens after a BOS token.

        Recomputes the prefix at every position (no key/value cache): O(L^2) work, fine
        for the evaluation sample sizes used here.
        """
        device = next(self.parameters()).device
        x = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
        for _ in range(seq_len - 1):
            logits = self.network(x.unsqueeze(-1), None)[:, -1]
            probs = torch.softmax(logits.to(sampling_dtype), dim=-1)
            if top_p is not None:
                probs = top_p_filter(probs, top_p)
            x = torch.cat([x, sample_categorical(probs, generator).unsqueeze(-1)], dim=1)
        return x
