"""How an evaluation's wall time depends on the ranks of its job.

Every rank of a job evaluates its share (:mod:`benchmarks.evaluation`): the likelihood
batches, the sampler calls and the Inception feature chunks are numbered shards, shard i
computed by rank i mod R. With S shards of equal cost on R ranks the slowest rank
computes ceil(S / R) of them, so the speed-up over one rank is

    speedup(R, S) = S / ceil(S / R)      (= R when R divides S; at most S)

and speedup(R, None) = R when S is not known. A time t measured on R' ranks then takes

    t * speedup(R', S) / speedup(R, S)

on R ranks, and a throughput r measured per device (samples per second of one rank)
draws N samples in N / (r * speedup(R, S)) seconds.

S is what the task's settings tell: the sampler calls of one set of samples, which are
the bulk of an evaluation that samples (text: sample_count / sample_batch, one call when
sample_batch is 0; images: ceil(sample_count / sample_batch), one when sample_seeding is
stream, whose calls the main rank draws in order). Its likelihood batches or feature
chunks may be more or fewer; the sampler calls stand for them all, so that an
evaluation with fewer calls than ranks is never priced as if every rank were busy. A
task without samples (zero-shot likelihood: thousands of batches) splits as R. A task
not in :data:`SPLIT` (toy2d, the idle-steps simulation) does not split its evaluation:
every rank computes all of it, S = 1.
"""

from __future__ import annotations

import math

from ..config.run_config import RunConfig

__all__ = ["SPLIT", "evaluation_shards", "sample_count", "speedup"]

SPLIT = frozenset({"image", "image-checkpoint", "image-fid-curve", "text-lm", "text-zero-shot"})
"""The tasks whose evaluation is split into shards over the ranks."""


def sample_count(config: RunConfig) -> int | None:
    """Samples the task's sampler draws in one evaluation (``task.sample_count``), or
    None for a task without that setting."""
    count = getattr(config.task.params, "sample_count", None)
    return count if isinstance(count, int) and count > 0 else None


def evaluation_shards(config: RunConfig) -> int | None:
    """S, the shards that bound the speed-up of ``config``'s evaluation over ranks (see
    the module docstring), or None when they do not bound it."""
    if config.task.name not in SPLIT:
        return 1
    count = sample_count(config)
    if count is None:
        return None
    params = config.task.params
    if getattr(params, "sample_seeding", None) == "stream":
        return 1
    batch = getattr(params, "sample_batch", 0)
    if not isinstance(batch, int) or batch <= 0:
        return 1
    return math.ceil(count / batch)


def speedup(ranks: int, shards: int | None) -> float:
    """speedup(R, S) = S / ceil(S / R) of the module docstring (R when S is None)."""
    if ranks < 1:
        raise ValueError(f"ranks: expected >= 1, got {ranks}")
    if shards is None:
        return float(ranks)
    if shards < 1:
        raise ValueError(f"shards: expected >= 1, got {shards}")
    return shards / math.ceil(shards / ranks)
