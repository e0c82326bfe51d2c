"""Attention of the transformer backbones: rotary positions, masks, and a key/value cache.

Self-attention over N query positions and P + N key positions,

    softmax(q k^T / sqrt(d) + bias) v,   bias = 0 where allowed, -inf where not,

with q, k rotated by their *absolute* positions (rotary embeddings, NeoX layout), so a
score depends on the query and key positions only through their difference. That makes
two things exact: the same positions may be given twice (block diffusion feeds the noised
and the clean copy of a sequence side by side), and keys computed once and kept in a
:class:`KVCache` score against later queries exactly as if recomputed.

Which keys a query may see is one of:

* nothing given: every key (bidirectional; with a cache: all cached keys and the N new);
* ``causal=True``: keys at or before the query's index (the autoregressive baseline);
* a boolean tensor (N, P + N) or (B, 1, N, P + N), True = allowed, for
  ``scaled_dot_product_attention``;
* a flex-attention ``BlockMask`` (built where flex attention runs, on CUDA), which
  skips the blocks of the score matrix that are fully masked;
* any object with an ``attend(q, k, v)`` method, for masks whose structure allows fewer
  dense products than one (N, P + N) score matrix (block diffusion's two halves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

__all__ = ["KVCache", "rotary", "apply_rotary", "attend", "AttentionMask", "check_rotary_heads"]

AttentionMask = torch.Tensor | object  # a bool tensor, a BlockMask, or has .attend(q, k, v)

_compiled_flex = None


@dataclass
class KVCache:
    """Keys and values of earlier positions, per layer: (B, heads, P, head_dim) each.

    ``store`` says whether a forward pass appends its keys and values (the clean block
    just generated) or only reads them (the noised block being denoised).
    """

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)
    store: bool = False

    def layer(self, i: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        while len(self.keys) <= i:
            self.keys.append(None)
            self.values.append(None)
        return self.keys[i], self.values[i]

    def put(self, i: int, k: torch.Tensor, v: torch.Tensor) -> None:
        old_k, old_v = self.layer(i)
        self.keys[i] = k if old_k is None else torch.cat([old_k, k], dim=2)
        self.values[i] = v if old_v is None else torch.cat([old_v, v], dim=2)

    def keep_last(self, positions: int) -> None:
        """Drop all but the last ``positions`` cached positions (a sliding context)."""
        if positions < 0:
            raise ValueError(f"positions must be >= 0, got {positions}")
        for i, (k, v) in enumerate(zip(self.keys, self.values, strict=True)):
            if k is not None:
                start = max(0, k.shape[2] - positions)
                self.keys[i], self.values[i] = k[:, :, start:], v[:, :, start:]


def check_rotary_heads(network: str, hidden: int, heads: int) -> None:
    """Raise ValueError unless ``hidden`` splits into ``heads`` heads of an even size (the
    rotary embedding rotates pairs of channels)."""
    if hidden % heads:
        raise ValueError(f"{network} hidden={hidden} must be divisible by heads={heads}")
    if (hidden // heads) % 2:
        raise ValueError(f"{network} head dimension must be even for rotary embeddings")


def rotary(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (N, head_dim) of the rotary angles of absolute ``positions`` (N,)."""
    device = positions.device
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(positions.float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # rotate-half (NeoX) layout
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: AttentionMask | None = None,
    causal: bool = False,
) -> torch.Tensor:
    """(B, H, N, d) attention output; ``mask`` as in the module docstring."""
    if mask is None or isinstance(mask, torch.Tensor):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    if hasattr(mask, "attend"):
        return mask.attend(q, k, v)
    global _compiled_flex
    if _compiled_flex is None:
        # Eager flex attention materialises the scores; compiled, it skips masked blocks.
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex(q, k, v, block_mask=mask)
