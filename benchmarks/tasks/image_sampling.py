"""The image task's samples and their Inception features, as shards of the evaluation.

Samples: ``sample_count`` images, ``sample_batch`` per sampler call; call j is shard j
(:mod:`benchmarks.tasks.sample_shards`). With ``sample_seeding`` per-batch, call j draws
from a generator seeded ``eval_batch_seed(s, j)``, s the sampling stream's seed, and the
calls are split over the ranks; with stream, one generator seeded s runs through all
calls, drawn in order by the main rank, each shard keeping the generator's state after
it so that a resumed evaluation continues the stream.

Metrics of the samples: NFE (of the last call), the idle-step ratio, the invalid-value
rate, and the sampler's speed (``perf/``), each with the sampler's settings on its card.

Features: the (N, d) features of N images, computed in chunks of a whole number of the
extractor's batches (so that each network batch holds the images it would hold in one
call over all N: the same values), chunk i being shard i, split over the ranks.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch
from tqdm import tqdm

from prime import SamplerConfig

from ..core import EvalContext, Metric
from ..evaluation.shards import Arrays, Sharding, sharding_of
from ..metrics.fid import CleanFIDFeatures, InceptionFeatures
from ..streams import eval_batch_seed, eval_seed
from .image_params import SHAPES, ImageParams
from .sample_shards import DrawnBatch, batch_arrays, speed_metrics

__all__ = [
    "draw_image_batches",
    "sample_images",
    "sharded_features",
    "to_pixels",
    "FEATURE_BATCHES_PER_SHARD",
]

FEATURE_BATCHES_PER_SHARD = 20
_STATE = "generator_state"


def to_pixels(tokens: torch.Tensor, invalid_pixels: str) -> torch.Tensor:
    """uint8 pixels of sampled values (any shape): a value v >= 256 becomes 255 (clamp)
    or v mod 256 (wrap, the authors' integer-to-uint8 cast)."""
    if invalid_pixels == "wrap":
        return torch.remainder(tokens, 256).to(torch.uint8)
    return tokens.clamp(max=255).to(torch.uint8)


def sample_images(
    model: torch.nn.Module,
    p: ImageParams,
    sampler: SamplerConfig,
    ctx: EvalContext,
    suffix: str = "",
) -> tuple[np.ndarray, list[Metric]]:
    """(N, channels, H, W) uint8 samples of the image task ``p`` under ``sampler`` and
    their metrics, names suffixed ``suffix``. Every step count starts the same seeded
    stream, so that two models at equal steps share their sampling noise."""
    c, h, w = SHAPES[p.dataset]
    sharding = sharding_of(ctx)
    drawn = draw_image_batches(
        model,
        p.sample_count,
        p.sample_batch,
        c * h * w,
        sampler,
        eval_seed("image.samples", ctx.seed),
        p.sample_seeding,
        ctx.device,
        p.sample_precision == "bfloat16",
        sharding,
        f"samples{suffix}",
    )
    tokens = torch.cat([b.tokens for b in drawn])
    images = to_pixels(tokens, p.invalid_pixels).view(len(tokens), c, h, w)
    card = {
        "samples": p.sample_count,
        "steps": sampler.steps,
        "proposal": p.proposal,
        "carry_over": p.sampler_carry_over,
        "temperature": list(p.temperature),
        "mixture_temper": p.mixture_temper,
        "corrector": list(p.corrector),
        "corrector_on": p.corrector_on,
        "time_warp": list(p.time_warp),
        "invalid_pixels": p.invalid_pixels,
        "sampling_dtype": p.sampling_dtype,
        "network_precision": p.sample_precision,
        "sample_seeding": p.sample_seeding,
        "ema": ctx.ema,
    }
    idle = torch.cat([b.idle_ratio for b in drawn])
    invalid = int((tokens >= 256).sum())
    metrics = [
        Metric(f"sample_nfe{suffix}", float(drawn[-1].nfe), card),
        Metric(f"sample_idle_ratio{suffix}", float(idle.double().mean()), card),
        Metric(f"sample_invalid_rate{suffix}", invalid / (p.sample_count * c * h * w), card),
    ]
    metrics += speed_metrics(drawn, card, ctx.device, sharding.ranks.size, suffix)
    return images.numpy(), metrics


def draw_image_batches(
    model: torch.nn.Module,
    count: int,
    batch: int,
    seq_len: int,
    sampler: SamplerConfig,
    seed: int,
    seeding: str,
    device: torch.device,
    bfloat16: bool,
    sharding: Sharding,
    stage: str,
) -> list[DrawnBatch]:
    """The ceil(count / batch) sampler calls of ``seq_len`` tokens, in call order, on
    every rank; see the module docstring for ``seeding``."""
    sizes = [min(batch, count - start) for start in range(0, count, batch)]
    settings = {"count": count, "batch": batch, "seed": seed, "seeding": seeding}
    settings.update(sampler=repr(sampler), bfloat16=bfloat16)
    shards = sharding.stage(stage, settings)
    sequential = seeding == "stream"
    first, gen = 0, None
    if sequential:
        gen = torch.Generator(device=device).manual_seed(seed)
        first, last = shards.resume_point(len(sizes))
        if last is not None:
            gen.set_state(torch.from_numpy(last[_STATE]))
    bar = tqdm(total=len(sizes), desc=f"sampling ({sampler.steps} steps)", unit="batch")
    for j, size in enumerate(sizes):
        bar.update(1)
        if sequential:
            if j < first or not sharding.ranks.is_main:
                continue
        elif not shards.todo(j):
            continue
        else:
            gen = torch.Generator(device=device).manual_seed(eval_batch_seed(seed, j))
        began = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            result = model.sample(size, seq_len, sampler, generator=gen)
        arrays = batch_arrays(result, 0, time.perf_counter() - began)
        if sequential:
            arrays[_STATE] = gen.get_state().numpy()
        shards.save(j, arrays)
    bar.close()
    return [DrawnBatch.from_arrays(a) for a in shards.gather(len(sizes))]


def _fingerprint(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def sharded_features(
    extractor: InceptionFeatures | CleanFIDFeatures,
    images: np.ndarray,
    sharding: Sharding,
    stage: str,
    logits: bool = False,
    desc: str = "sample features",
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, d) features of the (N, channels, H, W) uint8 ``images`` (and, with ``logits``,
    the classifier logits of the same pass, else None), on every rank."""
    # An extractor without batches (a stand-in) is one shard.
    chunk = getattr(extractor, "batch_size", max(len(images), 1)) * FEATURE_BATCHES_PER_SHARD
    starts = list(range(0, len(images), chunk))
    settings = {"extractor": extractor.name, "n": len(images), "chunk": chunk}
    settings.update(logits=logits, images=_fingerprint(images))
    shards = sharding.stage(stage, settings)
    for i, start in enumerate(starts):
        if not shards.todo(i):
            continue
        part = images[start : start + chunk]
        out: Arrays = {}
        if logits:
            out["features"], out["logits"] = extractor.pool_and_logits(part, desc=desc)
        else:
            out["features"] = extractor(part, desc=desc)
        shards.save(i, out)
    done = shards.gather(len(starts))
    features = np.concatenate([s["features"] for s in done])
    return features, (np.concatenate([s["logits"] for s in done]) if logits else None)
