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

On CUDA the masks are flex-attention ``BlockMask`` objects (fully masked tiles of the
score matrix are skipped); elsewhere dense booleans for ``scaled_dot_product_attention``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
from torch.nn.attention.flex_attention import create_block_mask

__all__ = ["AttentionBackend", "training_rule", "training_mask", "context_rule", "context_mask"]

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
    index = torch.arange(n, device=device)
    return training_rule(index[:, None], index[None, :], seq_len, block)


def training_mask(
    seq_len: int,
    block: int,
    device: torch.device | str = "cpu",
    backend: AttentionBackend = "auto",
):
    """The (2L, 2L) training mask (bool tensor, or a BlockMask for flex attention)."""
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
