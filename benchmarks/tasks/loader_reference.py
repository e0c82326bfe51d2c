"""The real images of an in-training FID taken from the training loader.

The authors' FID along training takes its real statistics from every batch of a shuffled,
randomly flipped loader over the reference split (mdm-prime image/main.py:111-122,
216-237; utils/eval_loop.py:85-87): a ``DistributedSampler(shuffle=True)`` set to epoch 0,
whole batches only (``drop_last``). For a split of N images and a global batch of G that
is, here,

    reference = [flip_i(images[pi_i]) for i < floor(N / G) G],

with pi a permutation of range(N) (``torch.randperm`` of a generator seeded by the
``image.loader_reference_order`` stream: at run seed 0 the permutation of the sampler's
seed 0 at epoch 0) and flip_i a horizontal flip where the i-th draw of the
``image.loader_reference_flips`` stream is below 1/2. N = 50,000 and G = 8 x 64 give the
authors' 97 x 512 = 49,664 images (a sampler over ranks that do not divide N would pad
its permutation; not modelled).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core import ConfigError
from ..streams import eval_generator

__all__ = ["loader_reference"]


def loader_reference(images: np.ndarray, global_batch: int, run_seed: int) -> np.ndarray:
    """The (floor(N / G) G, channels, H, W) uint8 images one epoch of a shuffled, flipped
    loader with global batch G = ``global_batch`` yields from ``images`` (N, ...)."""
    n = len(images)
    count = n // global_batch * global_batch
    if count == 0:
        raise ConfigError(
            f"task.reference: training_loader needs at least one global batch of "
            f"{global_batch} images; the reference split has {n}"
        )
    order = eval_generator("image.loader_reference_order", run_seed)
    chosen = torch.randperm(n, generator=order)[:count].numpy()
    flips = eval_generator("image.loader_reference_flips", run_seed)
    flip = (torch.rand(count, generator=flips) < 0.5).numpy()
    out = np.array(images[chosen])
    out[flip] = out[flip][..., ::-1]
    return out
