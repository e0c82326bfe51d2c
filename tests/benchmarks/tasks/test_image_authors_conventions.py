"""Settings of the image task that take the authors' conventions: images without
replacement per epoch (row_order), values past 255 wrapped (invalid_pixels), the FID
curve's training-loader reference, and the corrector step at strength 0 (corrector_on)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.data.loader import StepSampler, training_loader
from benchmarks.tasks import image_splits, images
from benchmarks.tasks.image_params import ImageParams
from benchmarks.tasks.loader_reference import loader_reference
from prime import Sampler, SamplerConfig, SubTokenizer, get_schedule
from prime.sampling.corrector import corrector_jump
from tests.benchmarks.tasks.test_image_task import _cifar_parquet, _eval_context


def _task(**settings) -> images.ImageGeneration:
    return images.ImageGeneration(ImageParams(dataset="cifar10", **settings), None)


def _index_of(picture: np.ndarray, train: np.ndarray) -> int:
    """The training image ``picture`` is, as read or flipped (the images are distinct)."""
    hits = [
        i for i, x in enumerate(train) if (x == picture).all() or (x[..., ::-1] == picture).all()
    ]
    assert len(hits) == 1
    return hits[0]


def test_epoch_permutation_uses_every_training_image_once_per_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    num_images, batch = 12, 4
    _cifar_parquet(tmp_path / "train.parquet", num_images, 0)
    path = str(tmp_path / "train.parquet")
    assert _task(path=path).train_rows().order == "replacement"  # the default
    rows = _task(path=path, row_order="epoch_permutation").train_rows()
    assert rows.order == "epoch_permutation"
    # as the training loop builds its sampler (benchmarks/training/lightning_module.py)
    sampler = StepSampler(
        len(rows),
        batch,
        batch,
        1,
        0,
        1,
        lambda step: 500 + step,
        order=rows.order,
        seed_of_epoch=lambda epoch: 900 + epoch,
    )
    train = image_splits.load_images("cifar10", "train", path)
    steps = itertools.islice(iter(training_loader(rows, sampler, 0, 2, False)), 3 * 3)
    seen = [_index_of(x.numpy().reshape(3, 32, 32), train) for step in steps for x in step["x0"]]
    for epoch in range(3):
        assert sorted(seen[epoch * num_images : (epoch + 1) * num_images]) == list(range(12))
    assert seen[:num_images] != seen[num_images : 2 * num_images]  # reshuffled
    image_splits.load_images.cache_clear()


@pytest.mark.parametrize("rule, pixel", [("wrap", 3), ("clamp", 255)])
def test_a_sampled_259_becomes_the_pixel_of_the_rule(tmp_path, rule, pixel):
    tokens = torch.zeros(2, 3 * 32 * 32, dtype=torch.long)
    tokens[0, 5], tokens[1, 7], tokens[1, 8] = 259, 255, 342
    model = SimpleNamespace(
        sample=lambda n, length, sampler, generator: SimpleNamespace(
            tokens=tokens[:n], idle_steps=torch.zeros(n), nfe=4, num_steps=4, num_classes=256
        )
    )
    task = _task(sample_count=2, sample_batch=2, invalid_pixels=rule)
    out, metrics = task.sample_images(model, _eval_context(tmp_path), 4)
    flat = out.reshape(2, -1)
    assert out.dtype == np.uint8 and flat[0, 5] == pixel and flat[1, 7] == 255
    assert flat[1, 8] == (86 if rule == "wrap" else 255)  # 342 - 256
    assert (np.delete(flat[0], 5) == 0).all()
    rate = next(m.value for m in metrics if m.name == "sample_invalid_rate")
    assert rate == 2 / tokens.numel()  # counted whatever the rule


def test_the_training_loader_reference_is_a_flipped_permutation_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    _cifar_parquet(tmp_path / "ref.parquet", 10, 3)
    split = image_splits.load_images("cifar10", "train", str(tmp_path / "ref.parquet"))
    image_splits.load_images.cache_clear()
    for seed in (0, 5):
        got = loader_reference(split, 4, seed)
        # Restated: the stream offsets 0 (order) and 130,000 (flips) of benchmarks.streams.
        perm = torch.randperm(10, generator=torch.Generator().manual_seed(seed)).numpy()
        flip = torch.rand(8, generator=torch.Generator().manual_seed(130_000 + seed)) < 0.5
        want = [split[perm[i]][..., ::-1] if flip[i] else split[perm[i]] for i in range(8)]
        assert got.shape == (8, 3, 32, 32)  # floor(10 / 4) whole batches of 4
        assert np.array_equal(got, np.stack(want))
        assert 0 < int(flip.sum()) < 8
    # At seed 0 the images are those of DistributedSampler(shuffle=True) at epoch 0 over
    # 2 ranks of 2 images per batch, drop_last: 2 batches per rank.
    taken = []
    for rank in range(2):
        sampler = torch.utils.data.DistributedSampler(
            range(10), num_replicas=2, rank=rank, shuffle=True, seed=0
        )
        sampler.set_epoch(0)
        taken += list(sampler)[:4]
    chosen = [_index_of(x, split) for x in loader_reference(split, 4, 0)]
    assert sorted(chosen) == sorted(taken)


def test_the_corrector_at_strength_zero_moves_to_the_proposal_at_rate_alpha_prime():
    schedule, mask, t, h = get_schedule("polynomial"), 9, 0.4, 0.05
    # By hand: alpha = (1 - t)^3 = 0.216, alpha' = 3 (1 - t)^2 = 1.08 (flow time).
    rate = 1.08 / (1 - 0.216)
    y = torch.tensor([mask, 2, 3] * 400)
    y_hat = torch.full_like(y, 3)
    out = corrector_jump(y, y_hat, schedule, t, h, 0.0, mask, torch.Generator().manual_seed(8))
    u = torch.rand(y.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    moves = (y != y_hat) & (u < 1 - math.exp(-h * rate))
    assert torch.equal(out, torch.where(moves, y_hat, y))
    assert 0 < int(moves.sum()) < int((y != y_hat).sum())
    assert not (out == mask).logical_and(y != mask).any()  # nothing is remasked


def test_corrector_on_always_runs_the_step_at_strength_zero():
    codec = SubTokenizer(256, 2)

    def denoiser(y_t, t):  # a fixed random network: the proposals vary
        gen = torch.Generator().manual_seed(int(1000 * float(t[0])))
        return torch.randn(*y_t.shape[:-1], codec.num_classes, generator=gen)

    def draw(**settings):
        config = SamplerConfig(steps=16, proposal="subtoken", carry_over=False, **settings)
        sampler = Sampler(denoiser, codec, config, schedule="polynomial")
        return sampler(3, 40, generator=torch.Generator().manual_seed(6)).tokens

    off = draw()
    assert torch.equal(draw(corrector=(0.0, 0.0, 0.0)), off)  # a = 0 skips the step
    assert not torch.equal(draw(corrector=(0.0, 0.0, 0.0), corrector_at_zero=True), off)
    strong = draw(corrector=(4.0, 1.0, 0.0))  # a > 0: the same draws either way
    assert torch.equal(draw(corrector=(4.0, 1.0, 0.0), corrector_at_zero=True), strong)
    # the task setting: auto leaves a = 0 off, always keeps the step
    assert _task(corrector=(0.0, 0.0, 0.0)).sampler_config().corrector is None
    always = _task(corrector=(0.0, 0.0, 0.0), corrector_on="always").sampler_config()
    assert always.corrector == (0.0, 0.0, 0.0) and always.corrector_at_zero
    strong = _task(corrector=(16.0, 2.0, 0.75)).sampler_config()
    assert strong.corrector == (16.0, 2.0, 0.75) and not strong.corrector_at_zero
