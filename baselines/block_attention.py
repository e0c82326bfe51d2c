"""Attention masks of block diffusion (BD3-LM, Arriola et al., 2025).

A sequence of L tokens is cut into blocks of L' tokens, block id ``i // L'`` (when L' does
not divide L the last block is the shorter remainder).

Training feeds the noised x_t and the clean x_0 side by side, 2L positions, both halves
at positions 0..L-1. Query q may see key k (True) if one of three rules holds:

* block-diagonal: q and k in the same half and the same block (bidirectional);
* offset block-causal: q in x_t, k in x_0, block(k) < block(q) (clean earlier blocks);
* block-causal: q and k in x_0, block(k) <= block(q).

So x_t's block b sees its own noised tokens and the clean blocks before it, and the x_0
half computes for every block the keys and values a sampler would have cached for it.

Sampling (without a key/value cache) runs one sequence of clean blocks followed by the
block being denoised, with the block-causal rule over absolute positions; a sliding
context of c blocks also drops keys more than c blocks before the query's block. The
x_0 half of training is this rule with c unbounded.

On CUDA the training mask is a flex-attention ``BlockMask`` (fully masked tiles of the
score matrix are skipped). Elsewhere it is a :class:`SplitTrainingMask`: dense boolean
masks for ``scaled_dot_product_attention`` in two products, x_t queries against all 2L
keys and x_0 queries against the x_0 keys only (x_0 never sees x_t), which is 3 L^2
scores instead of the 4 L^2 of one (2L, 2L) product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask

__all__ = [
    "AttentionBackend",
    "SplitTrainingMask",
    "training_rule",
    "training_mask",
    "dense_training_mask",
    "context_rule",
    "context_mask",
]

AttentionBackend = Literal["auto", "sdpa", "flex"]


def training_rule(q: torch.Tensor, k: torch.Tensor, seq_len: int, block: int) -> torch.Tensor:
    """Whether query index q may see key index k, both in [0, 2L) (broadcasting)."""
    q_noised, k_noised = q < seq_len, k < seq_len
    q_block, k_block = (q % seq_len) // block, (k % seq_len) // block
    diagonal = (q_noised == k_noised) & (q_block == k_block)
    offset_causal = q_noised & ~k_noised & (k_block < q_block)
    block_causal = ~q_noised & ~k_noised & (k_block <= q_block)
    return diagonal | offset_causal | block_causal


def context_rule(
    q: torch.Tensor, k: torch.Tensor, block: int, context_blocks: int | None
) -> torch.Tensor:
    """Block-causal over absolute positions q, k, within ``context_blocks`` earlier blocks."""
    q_block, k_block = q // block, k // block
    allowed = k_block <= q_block
    if context_blocks is not None:
        allowed = allowed & (k_block >= q_block - context_blocks)
    return allowed


@dataclass(frozen=True)
class SplitTrainingMask:
    """The (2L, 2L) training mask as two products: ``noised`` (L, 2L) for the x_t queries,
    ``clean`` (L, L) for the x_0 queries over the x_0 keys."""

    seq_len: int
    noised: torch.Tensor
    clean: torch.Tensor

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H, 2L, d) output for (B, H, 2L, d) queries, keys and values."""
        n = self.seq_len
        noised = F.scaled_dot_product_attention(q[:, :, :n], k, v, attn_mask=self.noised)
        clean = F.scaled_dot_product_attention(
            q[:, :, n:], k[:, :, n:], v[:, :, n:], attn_mask=self.clean
        )
        return torch.cat([noised, clean], dim=2)


def _backend(backend: AttentionBackend, device: torch.device) -> str:
    if backend not in ("auto", "sdpa", "flex"):
        raise ValueError(f"attention backend must be 'auto', 'sdpa' or 'flex', got {backend!r}")
    if backend == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    return backend


@lru_cache(maxsize=16)
def _training_mask(seq_len: int, block: int, device: torch.device, backend: str):
    n = 2 * seq_len
    if backend == "flex":

        def mask_mod(b, h, q_idx, kv_idx):  # noqa: ANN001 - flex-attention signature
            return training_rule(q_idx, kv_idx, seq_len, block)

        return create_block_mask(mask_mod, None, None, n, n, device=device)
    dense = dense_training_mask(seq_len, block, device)
    return SplitTrainingMask(
        seq_len, dense[:seq_len].contiguous(), dense[seq_len:, seq_len:].contiguous()
    )


def dense_training_mask(seq_len: int, block: int, device: torch.device | str = "cpu"):
    """The (2L, 2L) training mask as one boolean tensor."""
    index = torch.arange(2 * seq_len, device=device)
    return training_rule(index[:, None], index[None, :], seq_len, block)


def training_mask(
    seq_len: int,
    block: int,
    device: torch.device | str = "cpu",
    backend: AttentionBackend = "auto",
):
    """The (2L, 2L) training mask: a flex-attention BlockMask, or the two dense halves
    of a :class:`SplitTrainingMask` for SDPA."""
    if seq_len < 1 or block < 1:
        raise ValueError(f"seq_len and block size must be >= 1, got {seq_len}, {block}")
    device = torch.device(device)
    return _training_mask(seq_len, block, device, _backend(backend, device))


def context_mask(
    positions: torch.Tensor, block: int, context_blocks: int | None = None
) -> torch.Tensor:
    """Bool (N, N) block-causal mask over absolute ``positions`` (N,) (dense: sampling
    without a cache is the reference path, not the fast one)."""
    return context_rule(positions[:, None], positions[None, :], block, context_blocks)
