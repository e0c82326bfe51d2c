"""The images of a dataset split: the hub's copy, a local parquet copy, or ImageNet-32's
downsampled-ImageNet pickles, as (N, channels, H, W) uint8 arrays, read once per process."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np

from ..data.imagenet_batches import imagenet32_split
from ..data.images import CIFAR10, IMAGENET32, fashion_mnist, image_tokens

__all__ = ["load_images"]


@cache
def load_images(
    dataset: str, split: str, path: str | None = None, batches: str | None = None
) -> np.ndarray:
    """(N, channels, H, W) uint8 images of a dataset split; ``batches``: the directory of
    ImageNet-32's downsampled-ImageNet pickles, read in place of ``path`` or the hub."""
    if batches is not None:
        return imagenet32_split(batches, split)
    if dataset == "fashion-mnist":
        return fashion_mnist("train" if split == "train" else "test")
    source = {"cifar10": CIFAR10, "imagenet32": IMAGENET32}[dataset]
    hub_split = {"cifar10": {"validation": "test"}}.get(dataset, {}).get(split, split)
    return image_tokens(replace(source, split=hub_split, path=path or source.path))
