"""Image datasets as uint8 pixel tokens (docs/method.md §7.3).

Every pixel-channel value is a token (C = 256): an image is (channels, H, W) uint8 and a
dataset is (N, channels, H, W), built once and cached memory-mapped like the text blocks
(key: data fingerprint, split, source). Sources:

* CIFAR-10 and ImageNet-32 through ``datasets`` (hub datasets in their published schema:
  an image column decoded by ``datasets.Image`` and a label column), or local parquet
  files in the same schema. The hub's ImageNet-32 (``IMAGENET32``) is a community upload
  of ImageNet-1k at 32 x 32 whose resize filter is not stated: a stand-in, not the paper's
  data, which is the box-resized downsampled ImageNet read by :mod:`.imagenet_batches`;
* Fashion-MNIST (28 x 28, one channel; the same token alphabet as CIFAR) from Debian's
  ``dataset-fashion-mnist`` IDX files when present, otherwise the hub.

Training batches use a random horizontal flip, as in the paper.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .cache import default_cache_dir, published, staged_directory
from .loader import ArrayRows

__all__ = [
    "ImageSource",
    "CIFAR10",
    "IMAGENET32",
    "FASHION_MNIST",
    "DEBIAN_FASHION_MNIST",
    "read_idx",
    "image_tokens",
    "fashion_mnist",
    "random_hflip",
    "ImageRows",
]

FORMAT_VERSION = 1
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class ImageSource:
    name: str
    path: str  # hub dataset id, or a local parquet file / directory
    split: str = "train"
    image_column: str = "image"
    channels: int = 3
    size: int = 32


CIFAR10 = ImageSource("cifar10", "uoft-cs/cifar10", "train", "img", 3, 32)
# A community copy of ImageNet-1k at 32 x 32 (resize filter not stated), not the paper's
# box-resized pickles (benchmarks.data.imagenet_batches).
IMAGENET32 = ImageSource("imagenet32", "benjamin-paine/imagenet-1k-32x32", "train", "image", 3, 32)
FASHION_MNIST = ImageSource(
    "fashion-mnist", "zalando-datasets/fashion_mnist", "train", "image", 1, 28
)

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzip-compressed when the name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {array.size} values")
    return array.reshape(shape)


def _to_array(image: Any, source: ImageSource) -> np.ndarray:
    mode = "L" if source.channels == 1 else "RGB"
    array = np.asarray(image.convert(mode), dtype=np.uint8)
    if array.shape[:2] != (source.size, source.size):
        raise ValueError(
            f"{source.name}: expected {source.size}x{source.size} images, got {array.shape[:2]}"
        )
    return array[None] if source.channels == 1 else array.transpose(2, 0, 1)


def _load_hub_or_local(source: ImageSource) -> Any:
    import datasets

    if Path(source.path).exists():
        path = Path(source.path)
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        try:
            ds = datasets.load_dataset("parquet", data_files=[str(p) for p in files], split="train")
        except (ValueError, TypeError, OSError, datasets.exceptions.DatasetGenerationError) as err:
            raise ValueError(f"{path}: cannot be read as parquet ({err})") from None
    else:
        ds = datasets.load_dataset(source.path, split=source.split)
    if source.image_column not in ds.column_names:
        raise ValueError(
            f"{source.name}: image column {source.image_column!r} not found in {source.path}; "
            f"columns: {', '.join(ds.column_names)}"
        )
    feature = ds.features[source.image_column]
    if not isinstance(feature, datasets.Image) and not (
        isinstance(feature, dict) and {"bytes", "path"} <= set(feature)
    ):
        raise ValueError(
            f"{source.name}: image column {source.image_column!r} of {source.path} holds "
            f"{feature}, expected images ({{bytes, path}} structs of encoded files)"
        )
    return ds.cast_column(source.image_column, datasets.Image())


def _cache(key_fields: dict, name: str, build) -> np.ndarray:
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    root = default_cache_dir() / "images"
    folder = root / f"{name}-{key}"
    target = folder / "pixels.npy"
    if published(target):
        return np.load(target, mmap_mode="r")
    pixels = build()
    with staged_directory(folder) as tmp:
        np.save(tmp / "pixels.npy", pixels)
        (tmp / "meta.json").write_text(json.dumps({**key_fields, "shape": pixels.shape}))
    return np.load(target, mmap_mode="r")


def image_tokens(source: ImageSource) -> np.ndarray:
    """(N, channels, size, size) uint8 pixels of ``source``, cached memory-mapped."""
    ds = _load_hub_or_local(source)
    fields = {
        "format": FORMAT_VERSION,
        "source": asdict(
            replace(source, path="local" if Path(source.path).exists() else source.path)
        ),
        "data": str(getattr(ds, "_fingerprint", "")),
    }

    def build() -> np.ndarray:
        out = np.empty((len(ds), source.channels, source.size, source.size), dtype=np.uint8)
        for i, row in enumerate(
            tqdm(ds, desc=f"decoding {source.name} ({source.split})", unit="img", mininterval=2.0)
        ):
            out[i] = _to_array(row[source.image_column], source)
        return out

    return _cache(fields, f"{source.name}-{source.split}", build)


def fashion_mnist(split: str, directory: Path | None = None) -> np.ndarray:
    """(N, 1, 28, 28) uint8 Fashion-MNIST ("train": 60,000, "test": 10,000): Debian's IDX
    files when installed (or in ``directory``), else the hub."""
    if split not in ("train", "test"):
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    folder = directory or DEBIAN_FASHION_MNIST
    stem = "train" if split == "train" else "t10k"
    idx = folder / f"{stem}-images-idx3-ubyte.gz"
    if idx.is_file():
        images = read_idx(idx)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{idx}: expected (N, 28, 28) images, got {images.shape}")
        return images[:, None]
    return image_tokens(replace(FASHION_MNIST, split=split))


def random_hflip(batch: torch.Tensor, salts: np.ndarray) -> torch.Tensor:
    """Flip each image (B, C, H, W) left-right where its uniform random salt is odd
    (probability 1/2, a function of the row's draw alone)."""
    flip = torch.from_numpy((np.asarray(salts) & 1).astype(bool))
    return torch.where(flip[:, None, None, None].to(batch.device), batch.flip(-1), batch)


class ImageRows(ArrayRows):
    """Training rows of an (N, C, H, W) uint8 image array, randomly flipped by salt;
    ``order``: how steps take them (:class:`ArrayRows`)."""

    def __init__(self, images: np.ndarray, hflip: bool, order: str = "replacement"):
        super().__init__(images, order=order)
        self.hflip = hflip

    def get(self, indices: np.ndarray, salts: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(self.read(indices))
        if self.hflip:
            batch = random_hflip(batch, salts)
        return batch.flatten(1)  # uint8 pixels
