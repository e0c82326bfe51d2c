"""The text task's samples, drawn in batches, and the statistics pooled over them.

``count`` sequences are drawn ``batch`` at a time (0: all in one call). Batch j draws
from a generator seeded ``eval_batch_seed(s, j)``, s the seed of the sampling stream, so
its samples depend on its index alone (not on the other batches, nor on where it runs);
a single call draws from the stream's own generator, as the task did before batches.
Pooled over the batches:

* idle ratio: per sequence, idle transitions / T; the metric is their mean over all
  sequences;
* NFE: network calls of one sampler call (a batch), averaged over the calls; the
  authors count the calls of each batch of samples, the counter reset between batches
  (mdm-prime image/utils/eval_loop.py, ``reset_nfe_counter``). A transition is skipped
  (cached) only when no sequence of the batch changed, so NFE depends on the batch size:
  the batch is part of what is computed, not of how;
* invalid rate: the fraction of invalid codes (>= C) over all tokens;
* rejected: draws of a batch that ``retry`` redrew (:mod:`benchmarks.tasks.sample_retry`;
  the statistics above are the kept draws').

Each sampler call is a shard of the evaluation (:mod:`benchmarks.evaluation.shards`):
the calls are split over the job's ranks and kept as they are drawn, and since batch j
depends on j alone, the pooled statistics are those of one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from prime import SamplerConfig, SampleResult

from ..core import Metric
from ..evaluation.shards import Sharding
from ..streams import eval_batch_seed
from .network_autocast import network_autocast
from .sample_retry import SampleRetry, draw_accepted
from .sample_shards import DrawnBatch, batch_arrays

__all__ = ["TextSamples", "draw_text_samples", "sample_batches"]


@dataclass(frozen=True)
class TextSamples:
    """The sampler calls' results, in batch order."""

    results: tuple[DrawnBatch, ...]
    retry: SampleRetry = "none"
    """The rule that rejected draws."""

    @property
    def rejected(self) -> int:
        """Draws rejected and drawn again, over all batches."""
        return sum(r.rejected for r in self.results)

    def retry_metrics(self, card: dict) -> list[Metric]:
        """sample_rejected, the draws rejected over all batches ([] when none may be)."""
        if self.retry == "none":
            return []
        return [Metric("sample_rejected", float(self.rejected), {**card, "retry": self.retry})]

    @property
    def tokens(self) -> torch.Tensor:
        """(N, L) decoded codes of every sample."""
        return torch.cat([r.tokens for r in self.results])

    @property
    def idle_ratio(self) -> torch.Tensor:
        """(N,) idle-step ratio per sequence (diffusion samplers only)."""
        return torch.cat([r.idle_ratio for r in self.results])

    @property
    def nfe(self) -> float:
        """Network calls per sampler call, averaged over the calls."""
        return sum(r.nfe for r in self.results) / len(self.results)

    @property
    def invalid_rate(self) -> float:
        """Fraction of invalid codes (>= C) over all sampled tokens."""
        invalid = sum(int((~r.valid).sum()) for r in self.results)
        return invalid / sum(r.tokens.numel() for r in self.results)


def sample_batches(count: int, batch: int) -> list[int]:
    """Sizes of the sampler calls: ``count`` in one call when ``batch`` is 0 or at least
    ``count``, else count / batch calls of ``batch`` (batch must divide count)."""
    if batch <= 0 or batch >= count:
        return [count]
    if count % batch:
        raise ValueError(f"a batch of {batch} does not divide {count} samples")
    return [batch] * (count // batch)


def draw_text_samples(
    model: torch.nn.Module,
    count: int,
    batch: int,
    seq_len: int,
    config: SamplerConfig,
    seed: int,
    device: torch.device,
    precision: str = "float32",
    retry: SampleRetry = "none",
    sharding: Sharding | None = None,
    stage: str = "samples",
) -> TextSamples:
    """``count`` samples of ``seq_len`` tokens from ``model.sample``, ``batch`` per call
    (:func:`sample_batches`), from the sampling stream seeded ``seed``; ``precision``
    bfloat16 runs the network's calls under bfloat16 autocast, the probabilities and noise
    staying in the sampler's ``sampling_dtype`` (:mod:`benchmarks.tasks.network_autocast`);
    ``retry``: which draws are drawn again (:mod:`benchmarks.tasks.sample_retry`), from the
    batch's generator where the rejected draw left it. Call j is shard j of ``stage``."""
    sharding = sharding or Sharding()
    sizes = sample_batches(count, batch)
    block_size = getattr(model, "block_size", seq_len)
    settings = {"count": count, "batch": batch, "seq_len": seq_len, "seed": seed}
    settings.update(sampler=repr(config), retry=retry, precision=precision)
    shards = sharding.stage(stage, settings)
    for j, size in enumerate(tqdm(sizes, desc="sampling", unit="batch")):
        if not shards.todo(j):
            continue
        batch_seed = seed if len(sizes) == 1 else eval_batch_seed(seed, j)
        gen = torch.Generator(device=device).manual_seed(batch_seed)

        def draw(size: int = size, gen: torch.Generator = gen) -> SampleResult:
            with network_autocast(model, precision, device):
                return model.sample(size, seq_len, config, generator=gen)

        began = time.perf_counter()
        result, redrawn = draw_accepted(draw, retry, block_size)
        shards.save(j, batch_arrays(result, redrawn, time.perf_counter() - began))
    drawn = [DrawnBatch.from_arrays(a) for a in shards.gather(len(sizes))]
    return TextSamples(tuple(drawn), retry)
