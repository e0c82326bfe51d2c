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

from prime import BatchShard, SamplerConfig, SampleResult, sample_categorical, top_p_filter

__all__ = ["AutoregressiveLM"]


class AutoregressiveLM(nn.Module):
    """Next-token model around a causal network.

    ``network`` maps tokens as (B, L, 1) ids (and an ignored time) to (B, L, C) logits and
    must attend causally (``prime.backbones.DiT(..., causal=True)``).
    """

    def __init__(self, network: nn.Module, num_classes: int, bos_id: int | None = None):
        super().__init__()
        if not getattr(network, "causal", False):
            raise ValueError("the autoregressive baseline needs a causal network (causal=True)")
        self.network = network
        self.num_classes = num_classes
        self.bos_id = bos_id  # the first token of a sample when no prefix is given

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, L-1, C) of x_2..x_L given the prefixes, from tokens x (B, L)."""
        return self.network(x[:, :-1].unsqueeze(-1), None)

    def token_nll(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L-1) -log p(x_i | x_<i) for i = 2..L, in nats (float32 or wider)."""
        logits = self(x).float()
        return F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")

    def time_draws(self, seq_len: int) -> int:
        """No diffusion time: the NLL is exact and deterministic."""
        return 0

    @torch.no_grad()
    def block_nll(
        self,
        x0: torch.Tensor,
        t: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"exact": (B,)} float64 sums of -log p(x_i | x_<i) over i = 2..L (``t`` and
        ``generator`` unused: nothing is drawn)."""
        return {"exact": self.token_nll(x0).double().sum(-1)}

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
        config: SamplerConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
    ) -> SampleResult:
        """Ancestral sampling of (batch_size, seq_len) tokens after ``prefix`` ((P,) or
        (B, P); default: the BOS token). Of ``config`` only ``top_p`` and
        ``sampling_dtype`` apply. NFE = seq_len - P network calls, none idle.

        Recomputes the prefix at every position (no key/value cache): O(L^2) work, fine
        for the evaluation sample sizes used here.
        """
        config = config or SamplerConfig()
        device = next(self.parameters()).device
        if prefix is None:
            if self.bos_id is None:
                raise ValueError("sampling needs a prefix, or a model built with a bos_id")
            prefix = torch.tensor([self.bos_id])
        prefix = torch.as_tensor(prefix, device=device)
        x = prefix.expand(batch_size, -1) if prefix.dim() == 1 else prefix
        if x.shape[0] != batch_size or not 1 <= x.shape[1] <= seq_len:
            raise ValueError(f"prefix: expected (P,) or ({batch_size}, P), 1 <= P <= {seq_len}")
        steps = seq_len - x.shape[1]
        for _ in range(steps):
            logits = self.network(x.unsqueeze(-1), None)[:, -1]
            probs = torch.softmax(logits.to(config.sampling_dtype), dim=-1)
            if config.top_p is not None:
                probs = top_p_filter(probs, config.top_p)
            x = torch.cat([x, sample_categorical(probs, generator).unsqueeze(-1)], dim=1)
        return SampleResult(
            tokens=x,
            subtokens=x.unsqueeze(-1),
            idle_steps=torch.zeros(batch_size, dtype=torch.long, device=device),
            batch_idle_steps=0,
            nfe=steps,
            num_steps=steps,
            num_classes=self.num_classes,
        )
