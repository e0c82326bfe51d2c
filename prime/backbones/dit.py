"""Diffusion transformer (DiT) of MDLM with the MDM-Prime sub-token encoder (docs/method.md §4.1).

Sizes and training settings: docs/method.md §7.1.

Input: y_t (B, L, ell) sub-tokens. The encoder looks every sub-token up in one shared
table E in R^{(b+1) x (D/ell)} (row b is the mask) and concatenates a token's ell
embeddings to width D (ell = 1 is a plain (C+1) x D token embedding, as in MDLM). Then
``depth`` blocks of

    h = x + g1 * Attn(LN(x) * (1 + s1) + m1),    x' = h + g2 * MLP(LN(h) * (1 + s2) + m2),

where (m, s, g) come from adaLN-zero modulation of a conditioning vector c (sinusoidal
embedding of t -> MLP; t is fed as 0 when the model is not time-conditioned, as in MDLM),
attention is bias-free multi-head self-attention with rotary positions over the L tokens
(causal for the autoregressive baseline; any mask, explicit positions and a key/value
cache for block diffusion: :mod:`prime.backbones.attention`), the MLP is
D -> 4D -> D with tanh-GELU, LayerNorms have no bias. A final adaLN-modulated LayerNorm
and a zero-initialised linear head give (B, L, out_dim); with ``head_float32`` that final
layer runs with autocast disabled, in the parameters' dtype (float32 under mixed
precision), whatever precision the blocks run in. The conditioning MLP (t -> c) always
runs with autocast disabled, in the parameters' dtype, as the authors' text DiTs compute
it outside their blocks' bf16 autocast; without autocast (float32 runs) that changes
nothing, and under it only the blocks' and the final layer's own layers take c in bf16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionMask, KVCache, apply_rotary, attend, check_rotary_heads, rotary

__all__ = ["DiTConfig", "DIT_PRESETS", "DiT", "SubTokenEmbedding"]


@dataclass(frozen=True)
class DiTConfig:
    hidden: int = 768
    depth: int = 12
    heads: int = 12
    cond_dim: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_rotary_heads("DiT", self.hidden, self.heads)


DIT_PRESETS = {
    "small": DiTConfig(hidden=768, depth=12, heads=12, cond_dim=128, dropout=0.1),  # the paper
    "tiny": DiTConfig(hidden=512, depth=8, heads=8, cond_dim=128, dropout=0.1),
    "cpu": DiTConfig(hidden=128, depth=2, heads=4, cond_dim=64, dropout=0.0),
}


class SubTokenEmbedding(nn.Module):
    """Shared (b+1) x (D/ell) table; a token's ell embeddings are concatenated to width D."""

    def __init__(self, base: int, ell: int, dim: int):
        super().__init__()
        if dim % ell:
            raise ValueError(
                f"the sub-token encoder needs ell to divide the embedding width: "
                f"ell={ell} does not divide D={dim}"
            )
        self.ell = ell
        self.weight = nn.Parameter(torch.empty(base + 1, dim // ell))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, L, ell) -> (B, L, D)."""
        return F.embedding(y, self.weight).flatten(-2)


class _LayerNorm(nn.Module):
    """LayerNorm with a weight and no bias, computed in float32."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (x.shape[-1],), self.weight.float()).to(x.dtype)


class _TimeEmbedding(nn.Module):
    def __init__(self, cond_dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        features = torch.cat([args.cos(), args.sin()], dim=-1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class _Block(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.hidden
        self.heads = cfg.heads
        self.norm1, self.norm2 = _LayerNorm(d), _LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(d, cfg.mlp_ratio * d),
            nn.GELU(approximate="tanh"),
            nn.Linear(cfg.mlp_ratio * d, d),
        )
        self.modulation = nn.Linear(cfg.cond_dim, 6 * d)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        causal: bool,
        mask: AttentionMask | None = None,
        cache: tuple[KVCache, int] | None = None,
    ) -> torch.Tensor:
        b, n, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            kv, layer = cache
            old_k, old_v = kv.layer(layer)
            if kv.store:
                kv.put(layer, k, v)
            if old_k is not None:
                k, v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
        attn = attend(q, k, v, mask, causal)
        x = x + gate1 * self.dropout(self.proj(attn.transpose(1, 2).reshape(b, n, d)))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.dropout(self.mlp(h))


class DiT(nn.Module):
    """MDLM's DiT over sub-tokenised tokens.

    Args:
        config: sizes (see ``DIT_PRESETS``).
        base: b, sub-token alphabet size (C for ell = 1).
        ell: sub-tokens per token; must divide ``config.hidden``.
        out_dim: outputs per token (C for a joint decoder).
        time_conditioned: feed t to the conditioning; otherwise t is replaced by 0.
        causal: causal attention (the autoregressive baseline).
        head_float32: run the final layer (modulation, LayerNorm, head) outside autocast.
    """

    def __init__(
        self,
        config: DiTConfig,
        base: int,
        ell: int,
        out_dim: int,
        *,
        time_conditioned: bool = False,
        causal: bool = False,
        head_float32: bool = False,
    ):
        super().__init__()
        self.config = config
        self.time_conditioned = time_conditioned
        self.causal = causal
        self.head_float32 = head_float32
        self.embed = SubTokenEmbedding(base, ell, config.hidden)
        self.time = _TimeEmbedding(config.cond_dim)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.depth))
        self.norm_out = _LayerNorm(config.hidden)
        self.modulation_out = nn.Linear(config.cond_dim, 2 * config.hidden)
        self.head = nn.Linear(config.hidden, out_dim)
        for layer in (self.modulation_out, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs (forward + backward) per token, by the count of PaLM's appendix B:
        6 N + 12 depth hidden L, with N the weights of the per-token matmuls (the blocks
        and the output head; the embedding table is a lookup, the conditioning per row)."""
        per_token = sum(
            p.numel()
            for name, p in self.blocks.named_parameters()
            if p.dim() == 2 and ".modulation." not in f".{name}"
        )
        per_token += self.head.weight.numel()
        return 6.0 * per_token + 12.0 * self.config.depth * self.config.hidden * seq_len

    def forward(
        self,
        y: torch.Tensor,
        t: torch.Tensor | None = None,
        *,
        positions: torch.Tensor | None = None,
        mask: AttentionMask | None = None,
        cache: KVCache | None = None,
        outputs: int | None = None,
    ) -> torch.Tensor:
        """y (B, N, ell) long, t (B,) -> (B, N, out_dim), or (B, outputs, out_dim).

        ``positions`` (N,): absolute positions of the N inputs (default 0..N-1); ``mask``:
        which keys each query sees (:mod:`prime.backbones.attention`); ``cache``: keys and
        values of earlier positions, read by every query, and extended by this call's own
        when ``cache.store``; ``outputs``: only the first positions' outputs are needed
        (block diffusion's noised half), so the output head runs on those alone.
        """
        x = self.embed(y)
        if t is None or not self.time_conditioned:
            t = torch.zeros(y.shape[0], device=y.device)
        # In float32 under any autocast: the authors' conditioning runs outside theirs.
        with torch.autocast(y.device.type, enabled=False):
            c = F.silu(self.time(t))
        if positions is None:
            positions = torch.arange(y.shape[1], device=y.device)
        rope = rotary(positions, self.config.hidden // self.config.heads)
        for i, block in enumerate(self.blocks):
            layer_cache = (cache, i) if cache is not None else None
            x = block(x, c, rope, self.causal and mask is None, mask, layer_cache)
        if outputs is not None:
            x = x[:, :outputs]
        if not self.head_float32:
            return self._final(x, c)
        dtype = self.head.weight.dtype
        with torch.autocast(x.device.type, enabled=False):
            return self._final(x.to(dtype), c.to(dtype))

    def _final(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The adaLN-modulated LayerNorm and the head: (B, N, D), (B, cond) -> (B, N, out)."""
        shift, scale = self.modulation_out(c)[:, None].chunk(2, dim=-1)
        return self.head(self.norm_out(x) * (1 + scale) + shift)
