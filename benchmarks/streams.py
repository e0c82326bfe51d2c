"""Every random stream of the harness, by name, in one place.

A run's numbers depend on its seed only through these streams, so two runs of one
config draw the same batches, noise, evaluation sets and samples on any machine and
any number of ranks, and no two purposes share a stream.

* Training (per optimizer step, :func:`step_seed`): the batch rows, the masking noise,
  the network's own randomness (dropout, mixture labels; one stream per micro-batch and
  rank), and the block-diffusion window search.
* Evaluation (:func:`eval_generator`): one stream per purpose, seeded with the run seed
  plus a fixed offset; cut into batches, one seed per batch (:func:`eval_batch_seed`).
"""

from __future__ import annotations

import torch

__all__ = [
    "DATA_STREAM",
    "NOISE_STREAM",
    "NETWORK_STREAM",
    "WINDOW_STREAM",
    "EPOCH_STREAM",
    "EVAL_STREAMS",
    "step_seed",
    "eval_seed",
    "eval_generator",
    "eval_batch_seed",
    "idle_seed",
]

# Training streams (the third argument of step_seed).
DATA_STREAM, NOISE_STREAM, NETWORK_STREAM = 0, 1, 2
WINDOW_STREAM = 3  # the block-diffusion window search (benchmarks.models.window_search)
EPOCH_STREAM = 4  # per-epoch row permutations (step_seed's step is then the epoch)

# Evaluation streams: name -> offset added to the run seed.
EVAL_STREAMS: dict[str, int] = {
    "toy.eval_set": 10_000,  # the fixed draws from the target pmf the likelihood uses
    "toy.likelihood": 20_000,  # times and masks of the toy's Monte Carlo likelihood
    "toy.samples": 30_000,
    "toy.exact_draws": 40_000,  # the exact-draw floor of the TV distance
    "text.likelihood": 50_000,
    "text.samples": 60_000,
    "zero_shot.likelihood": 70_000,
    "image.likelihood": 80_000,
    "image.samples": 90_000,
    "toy.steps_sweep": 100_000,  # the toy's samples at each number of steps
    "toy.steps_sweep_exact": 110_000,  # their exact-draw floor
    "image.fid_resampling": 120_000,  # the halves of the sample features for FID's SE
    # The FID curve's training-loader reference: offset 0, so that at run seed 0 its
    # torch.randperm is that of DistributedSampler's seed 0 at epoch 0 (the authors').
    "image.loader_reference_order": 0,
    "image.loader_reference_flips": 130_000,  # its random horizontal flips
}


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, step, stream), decorrelated by a large odd multiplier."""
    return (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + stream) % (2**63 - 1)


def network_stream(micro: int, accumulation: int, rank: int) -> int:
    """The network's stream of one micro-batch of one rank (disjoint from the others)."""
    return NETWORK_STREAM + 3 * (1 + micro + accumulation * rank)


def eval_seed(name: str, run_seed: int) -> int:
    """The seed of evaluation stream ``name`` (a key of :data:`EVAL_STREAMS`)."""
    if name not in EVAL_STREAMS:
        raise KeyError(f"unknown random stream {name!r}; known: {', '.join(EVAL_STREAMS)}")
    return EVAL_STREAMS[name] + run_seed


def eval_generator(name: str, run_seed: int, device: torch.device | None = None) -> torch.Generator:
    """A generator on ``device`` seeded for evaluation stream ``name``."""
    return torch.Generator(device=device or "cpu").manual_seed(eval_seed(name, run_seed))


def eval_batch_seed(stream_seed: int, batch: int, part: int = 0) -> int:
    """The seed of batch ``batch`` of part ``part`` (a Monte Carlo pass) of an evaluation
    stream seeded ``stream_seed``: a batch's draws depend on (stream, part, batch) only,
    never on the other batches or on which rank draws it."""
    return step_seed(stream_seed, batch, part)


def idle_seed(run_seed: int, num_steps: int) -> int:
    """The idle-step simulation's stream at T = ``num_steps``, within torch.manual_seed's
    [0, 2^64) (unchanged for run seeds below 1.8e14)."""
    return (run_seed * 100_003 + num_steps) % 2**64
