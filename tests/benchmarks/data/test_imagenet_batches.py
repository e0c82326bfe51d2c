"""ImageNet-32 from the downsampled-ImageNet pickles: pixel order, labels, the unpickler's
allow-list, and clear errors for broken files. Fixtures are written by the tests."""

import io
import pickle
import struct

import numpy as np
import pytest

from benchmarks.core import ConfigError
from benchmarks.data.imagenet_batches import (
    BATCH_FILES,
    RefusedPickle,
    imagenet32_split,
    read_batch,
)
from benchmarks.tasks.image_params import ImageParams
from benchmarks.tasks.image_splits import load_images
from benchmarks.tasks.images import ImageGeneration


class _Py2Pickler(pickle._Pickler):
    """What Python 2's cPickle wrote at protocol 2: every string an 8-bit string
    (SHORT_BINSTRING / BINSTRING) and numpy 1.x's global names (numpy.core...)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str8(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_str8
    dispatch[bytes] = save_str8

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def hand_made_image() -> np.ndarray:
    """(32, 32, 3) HWC: red = 8 * row, green = 8 * column, blue = 255 - row - column."""
    i, j = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([8 * i, 8 * j, 255 - i - j], axis=-1).astype(np.uint8)


def planar_row(image: np.ndarray) -> np.ndarray:
    """The file's row of an HWC image: all red values row by row, then green, then blue."""
    return np.concatenate([image[:, :, c].ravel() for c in range(3)])


def batch_dict(data: np.ndarray, labels, mean: bool = True) -> dict:
    """A batch as the dataset's writer made it, keys as Python 2 byte strings."""
    d = {b"data": data, b"labels": list(labels)}
    if mean:
        d[b"mean"] = data.mean(axis=0)  # float64, as in the train batches
    return d


def random_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_dataset(root, train_sizes, val_size):
    """The download's layout with tiny batches; returns the train and val data rows."""
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    train = [random_rows(n, seed) for seed, n in enumerate(train_sizes)]
    for name, rows in zip(BATCH_FILES["train"], train, strict=True):
        (root / name).write_bytes(
            py2_pickle(batch_dict(rows, [1 + k % 1000 for k in range(len(rows))]))
        )
    val = random_rows(val_size, 99)
    (root / "val/val_data").write_bytes(py2_pickle(batch_dict(val, [5] * val_size, mean=False)))
    return np.concatenate(train), val


def test_planar_rows_decode_to_chw_images_and_labels_shift_to_zero_based(tmp_path):
    image = hand_made_image()
    data = np.stack([planar_row(image), planar_row(image[:, ::-1])])
    path = tmp_path / "train_data_batch_1"
    path.write_bytes(py2_pickle(batch_dict(data, [1, 1000])))
    images, labels = read_batch(path)
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    assert np.array_equal(images[0], image.transpose(2, 0, 1))
    assert np.array_equal(images[1], image[:, ::-1].transpose(2, 0, 1))
    # Red at row 3, column 5 is 8 * 3; green is 8 * 5; blue is 255 - 3 - 5.
    assert images[0, :, 3, 5].tolist() == [24, 40, 247]
    assert labels.tolist() == [0, 999]


@pytest.mark.parametrize(
    "writer",
    [
        py2_pickle,  # Python 2 cPickle, protocol 2
        lambda d: pickle.dumps(d, protocol=2),  # Python 3 protocol 2: bytes via _codecs.encode
        lambda d: pickle.dumps(d, protocol=3),  # bytes keys stay bytes
        lambda d: pickle.dumps({k.decode(): v for k, v in d.items()}, protocol=4),
    ],
    ids=["py2", "py3-protocol2", "py3-bytes-keys", "py3-str-keys"],
)
def test_every_pickle_dialect_gives_the_same_batch(tmp_path, writer):
    data = random_rows(3, 0)
    path = tmp_path / "val_data"
    path.write_bytes(writer(batch_dict(data, [7, 8, 9])))
    images, labels = read_batch(path)
    assert np.array_equal(images.reshape(3, -1), data) and labels.tolist() == [6, 7, 8]


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


def test_a_pickle_naming_any_other_global_is_refused_before_anything_runs(tmp_path):
    sentinel = tmp_path / "ran"
    touch = f"open({str(sentinel)!r}, 'w').close()"
    cases = [
        (b"cos\nsystem\n(S'touch " + str(sentinel).encode() + b"'\ntR.", "os.system"),
        # Python 3 writes builtins under their Python 2 name at protocol 2.
        (pickle.dumps(_Eval(touch), protocol=2), "__builtin__.eval"),
        # Hidden after a well-formed batch entry, as another value of the dict.
        (pickle.dumps({"data": random_rows(1, 0), "x": _Eval(touch)}, protocol=4), "builtins.eval"),
    ]
    for i, (raw, name) in enumerate(cases):
        path = tmp_path / f"batch_{i}"
        path.write_bytes(raw)
        with pytest.raises(RefusedPickle, match=f"refused global {name} in the pickle") as err:
            read_batch(path)
        assert str(err.value).startswith(f"{path}: ")
    assert not sentinel.exists()
    # _codecs.encode stands for the latin-1 bytes of protocol 2 only, no other codec.
    path = tmp_path / "codec"
    path.write_bytes(pickle.dumps(b"ok", protocol=2).replace(b"latin1", b"utf_16"))
    with pytest.raises(RefusedPickle, match=r"codec: refused _codecs.encode\(str, 'utf_16'\)"):
        read_batch(path)


def test_broken_batches_are_refused_naming_the_file_and_what_was_expected(tmp_path):
    good = batch_dict(random_rows(4, 0), [1, 2, 3, 4])
    cases = {
        "truncated": (py2_pickle(good)[:5000], "truncated or corrupt"),
        "not_a_dict": (pickle.dumps([1, 2]), "expected a pickled dict"),
        "no_labels": (py2_pickle({b"data": random_rows(2, 0)}), "no 'labels' entry"),
        "wide": (
            py2_pickle(batch_dict(random_rows(2, 0)[:, :3000], [1, 2])),
            r"\(N, 3072\) uint8 array, got uint8 array \(2, 3000\)",
        ),
        "float": (
            py2_pickle(batch_dict(random_rows(2, 0).astype(np.float32), [1, 2])),
            "uint8 array, got float32",
        ),
        "short_labels": (py2_pickle(batch_dict(random_rows(3, 0), [1, 2])), "2 labels for 3"),
        "zero_based": (py2_pickle(batch_dict(random_rows(2, 0), [0, 1])), r"1\.\.1000, got 0"),
    }
    for name, (raw, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=expected) as err:
            read_batch(path)
        assert str(path) in str(err.value)


def test_splits_concatenate_the_batches_in_order_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "imagenet32"
    train, val = write_dataset(root, [3, 1, 2, 2, 1, 1, 2, 3, 1, 2], 4)
    images = imagenet32_split(root, "train")
    assert images.shape == (18, 3, 32, 32) and np.array_equal(images.reshape(18, -1), train)
    assert isinstance(imagenet32_split(root, "train"), np.memmap)
    assert np.array_equal(imagenet32_split(root, "validation").reshape(4, -1), val)
    (root / "train/train_data_batch_7").unlink()
    with pytest.raises(ValueError, match=r"train_data_batch_7: missing \(expected the"):
        imagenet32_split(root, "train")
    with pytest.raises(ValueError, match="not a directory"):
        imagenet32_split(tmp_path / "nowhere", "validation")


def test_the_image_task_reads_train_and_validation_from_the_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "imagenet32"
    train, val = write_dataset(root, [2] * 10, 3)
    params = ImageParams(dataset="imagenet32", imagenet_batches=str(root), hflip=False)
    rows = ImageGeneration(params, None).train_rows()
    picked = np.array([0, 7, 19])
    # Tokens in (channel, row, column) order are the file's planar rows themselves.
    assert len(rows) == 20
    assert np.array_equal(rows.get(picked, np.zeros(3, np.int64)).numpy(), train[picked])
    try:
        held = load_images("imagenet32", "validation", None, str(root))
        assert np.array_equal(np.asarray(held).reshape(3, -1), val)
    finally:
        load_images.cache_clear()
    with pytest.raises(ConfigError, match="not for cifar10"):
        ImageParams(dataset="cifar10", imagenet_batches=str(root))
    with pytest.raises(ConfigError, match="drop task.path, task.held_out_path"):
        ImageParams(dataset="imagenet32", imagenet_batches=str(root), path="a", held_out_path="b")
