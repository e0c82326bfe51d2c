"""Block-by-block sampling of block diffusion, with a key/value cache of the clean blocks.

For b = 1..B: the block's L' tokens start fully masked and are denoised by a masked-
diffusion sampler of :mod:`prime` (the time-grid sampler with idle-step counting, or the
first-hitting sampler), whose network call sees the clean earlier blocks as context.
The finished block then becomes context for the next.

Two ways to give the context, with identical results for the same random stream:

* ``kv_cache=True``: the clean blocks' keys and values are kept per layer; a denoising
  call runs the network on the L' noised tokens only, against the cache; when a block is
  finished one more pass over it (not counted as NFE: it denoises nothing, as in BD3-LM)
  appends its keys and values;
* ``kv_cache=False``: every call runs the network on all clean tokens followed by the
  noised block, under the block-causal mask (the reference path: quadratic in the
  length, since a clean block's keys depend on the blocks before it).

A sliding context of c blocks (``context_blocks``) bounds the attention of every block,
clean or noised, to the c blocks before it, so memory and work per block stop growing
with the length (sequences longer than the training length use it). Positions stay
absolute; with rotary embeddings only distances matter, and they stay below (c + 1) L'.

Bookkeeping over the whole sequence: idle steps and NFE are summed over blocks, and
``num_steps`` is the total number of transitions, so ``idle_ratio`` is the mean of the
blocks' ratios; for a block the closed form of :mod:`prime.sampling.idle` holds with the number of
tokens it reveals in place of L (:func:`expected_block_idle_ratio`).

A given first token (``first_token``, BD3-LM's ``ignore_bos``) is fixed at position 0
of the first block before it is denoised, so that block reveals L' - 1 tokens.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from prime import Sampler, SamplerConfig, SampleResult, Schedule, SubTokenizer, expected_idle_ratio
from prime.backbones import KVCache

from .block_attention import context_mask

__all__ = ["sample_blocks", "expected_block_idle_ratio"]


class _ContextDenoiser:
    """The in-block denoiser: the network on the noised block ``y`` (B, n, ell) at
    positions start..start+n-1, with the clean blocks before it as context."""

    def __init__(
        self,
        network: nn.Module,
        clean: torch.Tensor,
        start: int,
        block_size: int,
        cache: KVCache | None,
        context_blocks: int | None,
    ):
        self.network, self.clean, self.cache = network, clean, cache
        self.block_size, self.context_blocks = block_size, context_blocks
        self.start = start

    def __call__(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        size = y.shape[1]
        if self.cache is not None:
            positions = torch.arange(self.start, self.start + size, device=y.device)
            return self.network(y, None, positions=positions, cache=self.cache)
        # All of the history, not only the window: a clean block's keys depend on the
        # blocks in *its* window, as when the cache computed them.
        y_all = torch.cat([self.clean, y], dim=1)
        where = torch.arange(self.start + size, device=y.device)
        mask = context_mask(where, self.block_size, self.context_blocks)
        return self.network(y_all, None, positions=where, mask=mask)[:, -size:]


@torch.no_grad()
def sample_blocks(
    network: nn.Module,
    codec: SubTokenizer,
    block_size: int,
    config: SamplerConfig,
    *,
    batch_size: int,
    seq_len: int,
    schedule: str | Schedule,
    decoder: str = "joint",
    kv_cache: bool = True,
    context_blocks: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    first_token: int | None = None,
) -> SampleResult:
    """Sample (batch_size, seq_len) tokens block by block, each block with a
    :class:`prime.Sampler` under ``config`` (``config.steps`` per block, idle steps
    always cached: the network ignores t); ``first_token``: the token fixed at
    position 0 (None: sampled)."""
    config = replace(config, use_cache=True)
    if context_blocks is not None and context_blocks < 1:
        raise ValueError(f"context_blocks must be >= 1 (or None: all), got {context_blocks}")
    device = torch.device(device) if device is not None else codec.device
    cache = KVCache() if kv_cache else None
    clean = torch.empty(batch_size, 0, codec.ell, dtype=torch.long, device=device)
    results: list[SampleResult] = []
    for start in range(0, seq_len, block_size):
        size = min(block_size, seq_len - start)
        denoiser = _ContextDenoiser(network, clean, start, block_size, cache, context_blocks)
        sampler = Sampler(denoiser, codec, config, schedule=schedule, decoder=decoder)
        prefix = None if start or first_token is None else torch.tensor([first_token])
        result = sampler(batch_size, size, generator=generator, device=device, prefix=prefix)
        results.append(result)
        clean = torch.cat([clean, result.subtokens], dim=1)
        if cache is not None:
            cache.store = True
            positions = torch.arange(start, start + size, device=device)
            network(result.subtokens, None, positions=positions, cache=cache)
            cache.store = False
            if context_blocks is not None:
                cache.keep_last(context_blocks * block_size)
    return SampleResult(
        tokens=codec.decode(clean),
        subtokens=clean,
        idle_steps=torch.stack([r.idle_steps for r in results]).sum(0),
        batch_idle_steps=sum(r.batch_idle_steps for r in results),
        nfe=sum(r.nfe for r in results),
        num_steps=sum(r.num_steps for r in results),
        num_classes=codec.num_classes,
    )


def expected_block_idle_ratio(
    num_steps: int,
    seq_len: int,
    block_size: int,
    ell: int,
    schedule: str | Schedule,
    *,
    first_given: bool = False,
    eps: float = 1e-5,
) -> float:
    """Closed-form idle-step ratio of :func:`sample_blocks` on the uniform grid: the
    mean over blocks of :func:`prime.expected_idle_ratio` with the block's tokens to
    reveal in place of L (L', the last block the remainder, the first one fewer when
    ``first_given``); a block with none idles at every step."""
    sizes = [min(block_size, seq_len - s) for s in range(0, seq_len, block_size)]
    sizes[0] -= int(first_given)
    ratios = [
        expected_idle_ratio(num_steps, n, ell, schedule, eps=eps) if n else 1.0 for n in sizes
    ]
    return sum(ratios) / len(ratios)
