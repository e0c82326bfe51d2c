import gzip
import io
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.data.images import (
    CIFAR10,
    DEBIAN_FASHION_MNIST,
    IMAGENET32,
    fashion_mnist,
    image_tokens,
    random_hflip,
    read_idx,
)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _hub_parquet(path, column, images, labels):
    """A parquet file in the hub's image schema: {bytes, path} structs + a label column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    structs = [{"bytes": _png(im), "path": None} for im in images]
    pq.write_table(pa.table({column: structs, "label": labels}), path)


def test_cifar_and_imagenet32_schemas_give_uint8_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    for source, column in ((CIFAR10, "img"), (IMAGENET32, "image")):
        path = tmp_path / f"{source.name}.parquet"
        _hub_parquet(path, column, images, list(range(5)))
        pixels = image_tokens(replace(source, path=str(path)))
        assert pixels.shape == (5, 3, 32, 32) and pixels.dtype == np.uint8
        assert np.array_equal(pixels, images.transpose(0, 3, 1, 2))  # lossless PNG round trip
        again = image_tokens(replace(source, path=str(path)))
        assert isinstance(again, np.memmap)  # second call reads the cache
    with pytest.raises(ValueError, match="image column 'img' not found"):
        image_tokens(replace(CIFAR10, path=str(tmp_path / "imagenet32.parquet")))
    small = tmp_path / "small.parquet"
    _hub_parquet(small, "img", rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), [0, 1])
    with pytest.raises(ValueError, match="expected 32x32 images, got"):
        image_tokens(replace(CIFAR10, path=str(small)))


def test_idx_reader_and_fashion_mnist_from_idx_files(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    test = fashion_mnist("test", directory=tmp_path)
    assert test.shape == (3, 1, 28, 28) and np.array_equal(test[:, 0], images)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad.idx")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        fashion_mnist("validation")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_files():
    train, test = fashion_mnist("train"), fashion_mnist("test")
    assert train.shape == (60000, 1, 28, 28) and test.shape == (10000, 1, 28, 28)
    assert 60 < train.mean() < 90  # mostly dark background, bright garments


def test_random_hflip_flips_about_half_and_only_horizontally():
    batch = torch.arange(1000 * 2 * 3, dtype=torch.uint8).view(1000, 1, 2, 3) % 7
    salts = torch.randint(0, 2**62, (1000,), generator=torch.Generator().manual_seed(0))
    out = random_hflip(batch, salts.numpy())
    flipped = (out != batch).flatten(1).any(1)
    assert torch.equal(out[flipped], batch[flipped].flip(-1))
    assert 400 < int(flipped.sum()) < 600
