"""The image task end to end on a tiny CIFAR-10-schema parquet file."""

import io

import numpy as np
import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import parse_overrides
from benchmarks.reports.render import render_report
from benchmarks.tasks import image_splits, images
from benchmarks.training.runner import execute
from tests.helpers import StandInFeatures


def _cifar_parquet(path, n, seed):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(seed)
    structs = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
        structs.append({"bytes": buf.getvalue(), "path": None})
    pq.write_table(pa.table({"img": structs, "label": list(range(n))}), path)


def cifar_task_overrides(tmp_path) -> list[str]:
    """The image task on the tiny parquet files of ``tmp_path``: 6 samples of 4 steps."""
    return [
        "task.dataset=cifar10",
        f"task.path={tmp_path / 'train.parquet'}",
        f"task.reference_path={tmp_path / 'test.parquet'}",
        f"task.held_out_path={tmp_path / 'test.parquet'}",
        "task.eval_images=4",
        "task.sample_count=6",
        "task.sample_batch=6",
        "task.sample_steps=4",
        "task.reference_count=10",
    ]


@pytest.mark.parametrize(
    "features, precision",
    [
        ("stand-in", "float32"),
        pytest.param("inception", "float32", marks=pytest.mark.slow),
        # Training, sampling and the Inception network under bfloat16 autocast, as
        # "fastest" chooses on a CPU that computes bfloat16 natively.
        pytest.param("inception", "bfloat16", marks=pytest.mark.slow),
    ],
)
def test_tiny_cifar_run_reports_fid_kid_bpd_beside_the_paper(
    tmp_path, monkeypatch, features, precision
):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PRIMEBENCH_CPU_BF16", "1" if precision == "bfloat16" else "0")
    if features == "stand-in":  # the plumbing; the Inception numerics run in the slow case
        monkeypatch.setattr(images, "InceptionFeatures", StandInFeatures)
        monkeypatch.setattr(images, "CleanFIDFeatures", StandInFeatures)
    _cifar_parquet(tmp_path / "train.parquet", 12, 0)
    _cifar_parquet(tmp_path / "test.parquet", 10, 1)
    override_list = [
        *cifar_task_overrides(tmp_path),
        "task.fid_steps=[2]",
        "task.fid_real_floor=true",
        "task.fid_resamples=3",
        "task.clean_fid=true",
        "train.steps=2",
        "train.global_batch_size=4",
        "train.checkpoint_every=2",
    ]
    overrides = parse_overrides(override_list)
    (config,) = load_experiment("image-cpu").resolve("cpu", overrides, ["prime-l2"])
    expected = ("bf16-mixed", "bfloat16") if precision == "bfloat16" else ("32-true", "float32")
    assert (config.train.precision, config.task.params.fid_precision) == expected
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    metrics = execute(config, uri, tmp_path / "runs")["metrics"]
    for key in ("fid", "fid_cleanfid", "kid", "test_bpd_valid_bound", "sample_nfe"):
        assert np.isfinite(metrics[key]), key
    assert metrics["fid"] > 0 and metrics["sample_invalid_rate"] == 0.0
    assert metrics["inception_score_available"] == 0.0
    for key in ("fid_steps2", "kid_steps2", "fid_se", "fid_se_steps2", "fid_real_floor"):
        assert np.isfinite(metrics[key]), key
    assert metrics["sample_nfe_steps2"] <= 3  # 2 steps: at most 3 network calls
    render_report(uri, "cpu", results_dir=tmp_path / "results")
    table = (tmp_path / "results" / "cpu" / "table3_images_fid.md").read_text()
    # the paper's FID, at the paper's NFE (this run samples at 4 steps)
    assert "| prime-l2 | cifar10 | 2 |" in table and "| 3.26 at NFE 512 |" in table
    assert (tmp_path / "results" / "cpu" / "image_samples.png").is_file()
    nfe_table = (tmp_path / "results" / "cpu" / "table3_images_nfe.md").read_text()
    assert "| prime-l2 | 2 |" in nfe_table and "| prime-l2 | 4 |" in nfe_table
    assert (tmp_path / "results" / "cpu" / "table3_images_nfe.png").is_file()
    # no checkpoint evaluations yet: no ell x NFE table
    assert not (tmp_path / "results" / "cpu" / "table4_ell_nfe.md").exists()

    # The ell x NFE table: the same checkpoint sampled at two step counts.
    from benchmarks.config.run_config import RunConfig

    for nfe in (2, 4):
        evaluation = RunConfig.from_dict(
            {
                "experiment": "nfe-sweep",
                "variant": f"l2-nfe{nfe}",
                "scale": "cpu",
                "model": None,
                "upstream": {
                    "experiment": "image-cpu",
                    "variant": "prime-l2",
                    "overrides": override_list,
                },
                "task": {
                    "name": "image-checkpoint",
                    "dataset": "cifar10",
                    "path": str(tmp_path / "train.parquet"),
                    "reference_path": str(tmp_path / "test.parquet"),
                    "held_out_path": str(tmp_path / "test.parquet"),
                    "eval_images": 4,
                    "sample_count": 6,
                    "sample_batch": 6,
                    "sample_steps": nfe,
                    "reference_count": 10,
                    "clean_fid": False,
                },
            }
        )
        result = execute(evaluation, uri, tmp_path / "runs")["metrics"]
        assert result["sample_nfe"] <= nfe + 1 and np.isfinite(result["fid"])
    render_report(uri, "cpu", results_dir=tmp_path / "results")
    table4 = (tmp_path / "results" / "cpu" / "table4_ell_nfe.md").read_text()
    assert "NFE 2" in table4 and "NFE 4" in table4 and "| cifar10 | 2 |" in table4


class _HeldOut(Exception):
    """Raised by the stand-in likelihood: carries the images the task evaluated."""


def test_held_out_likelihood_never_reads_the_training_images(tmp_path, monkeypatch):
    """CIFAR-10's FID reference set is its train split, so a documented local train copy
    serves as both ``path`` and ``reference_path``; bits per dimension must still be
    measured on the test split (a local copy of it, or the hub's)."""
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    _cifar_parquet(tmp_path / "train.parquet", 12, 0)
    train = image_splits.load_images("cifar10", "train", str(tmp_path / "train.parquet"))
    requested = []

    def fake_tokens(source):
        requested.append((source.split, source.path))
        return np.full((5, 3, 32, 32), 7, dtype=np.uint8)  # "the hub's test split"

    def capture(model, rows, **_):
        raise _HeldOut(rows)

    image_splits.load_images.cache_clear()
    monkeypatch.setattr(image_splits, "image_tokens", fake_tokens)
    monkeypatch.setattr(images, "block_nll", capture)
    overrides = parse_overrides(
        [
            "task.dataset=cifar10",
            f"task.path={tmp_path / 'train.parquet'}",
            f"task.reference_path={tmp_path / 'train.parquet'}",
        ]
    )
    (config,) = load_experiment("image-cpu").resolve("cpu", overrides, ["prime-l2"])
    task = images.ImageGeneration(config.task.params, config)
    with pytest.raises(_HeldOut) as caught:
        task.evaluate(None, _eval_context(tmp_path))
    evaluated = caught.value.args[0].reshape(-1, 3, 32, 32)
    assert not any((evaluated[:, None] == train[None]).all(axis=(2, 3, 4)).any(axis=1))
    assert ("test", image_splits.CIFAR10.path) in requested
    image_splits.load_images.cache_clear()


def _eval_context(tmp_path):
    import torch

    from benchmarks.core import EvalContext

    return EvalContext(torch.device("cpu"), 0, tmp_path / "artifacts", ema=False)


def test_the_real_data_floor_never_scores_reference_images():
    from benchmarks.core import ConfigError

    def task(**overrides):
        settings = [f"task.{k}={v}" for k, v in overrides.items()]
        (config,) = load_experiment("image-cpu").resolve("cpu", parse_overrides(settings), ["mdm"])
        return images.ImageGeneration(config.task.params, config)

    held_out = np.arange(10 * 4).reshape(10, 1, 2, 2).astype(np.uint8)  # Fashion-MNIST test
    floor = task(sample_count=4, reference_count=6, fid_real_floor="true").floor_images(held_out, 6)
    assert np.array_equal(floor, held_out[6:])  # past the reference's first 6
    with pytest.raises(ConfigError, match="fewer than reference_count \\+ sample_count = 6 \\+ 5"):
        task(sample_count=5, reference_count=6).floor_images(held_out, 6)
    with pytest.raises(ConfigError, match="has 10000 images, fewer than the 10500"):
        task(sample_count=1000, reference_count=9500, fid_real_floor="true")  # before training
    with pytest.raises(ConfigError, match="task.fid_steps"):
        task(fid_steps="[4, 4]")
