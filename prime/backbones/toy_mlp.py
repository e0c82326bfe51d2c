"""The MLP denoiser of the 2-D toy experiment (docs/method.md §4.3, §7.4).

Input: L tokens of ell sub-tokens each. One shared table E in R^{(b+1) x d} embeds every
sub-token (row b is the mask); the L * ell embeddings are concatenated with the time t,

    h_0 = [E[y^{1,1}], ..., E[y^{L,ell}], t]  in R^{L ell d + 1},

then ``depth`` blocks Linear -> LayerNorm -> learnable Swish -> Dropout, and a linear
head to L * out_dim, reshaped to (B, L, out_dim).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ToyMLP", "LearnableSwish"]


class LearnableSwish(nn.Module):
    """x * sigmoid(beta x) with a learnable beta per feature (beta = 1 is SiLU)."""

    def __init__(self, width: int):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class ToyMLP(nn.Module):
    """MLP over a short sequence of sub-tokenised tokens.

    Args:
        seq_len: L, tokens per sample (2 for the 2-D toy).
        ell: sub-tokens per token.
        base: b; the embedding table has b + 1 rows (the last is the mask).
        out_dim: outputs per token (C for a joint decoder, ell * b for an independent one).
        emb_dim: d, width of one sub-token embedding.
        hidden: width of the hidden layers.
        depth: number of hidden blocks.
        dropout: dropout probability after each block.
        time_conditioned: append t to the input features.
    """

    def __init__(
        self,
        seq_len: int,
        ell: int,
        base: int,
        out_dim: int,
        *,
        emb_dim: int = 64,
        hidden: int = 512,
        depth: int = 2,
        dropout: float = 0.1,
        time_conditioned: bool = True,
    ):
        super().__init__()
        if min(seq_len, ell, base, out_dim, emb_dim, hidden, depth) < 1:
            raise ValueError("ToyMLP sizes must all be >= 1")
        self.seq_len, self.ell, self.out_dim = seq_len, ell, out_dim
        self.time_conditioned = time_conditioned
        self.embedding = nn.Embedding(base + 1, emb_dim)
        layers: list[nn.Module] = []
        width = seq_len * ell * emb_dim + int(time_conditioned)
        for _ in range(depth):
            layers += [
                nn.Linear(width, hidden),
                nn.LayerNorm(hidden),
                LearnableSwish(hidden),
                nn.Dropout(dropout),
            ]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, seq_len * out_dim)

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """y_t (B, L, ell) long, t (B,) -> (B, L, out_dim)."""
        if y_t.shape[1:] != (self.seq_len, self.ell):
            raise ValueError(
                f"ToyMLP expects y_t of shape (B, {self.seq_len}, {self.ell}), "
                f"got {tuple(y_t.shape)}"
            )
        h = self.embedding(y_t).flatten(1)
        if self.time_conditioned:
            h = torch.cat([h, t.to(h.dtype).unsqueeze(-1)], dim=-1)
        return self.head(self.body(h)).view(-1, self.seq_len, self.out_dim)
