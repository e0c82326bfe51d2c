"""Evaluation split over ranks: the same numbers as one process, whatever the split.

Two ranks run as two threads of this process, meeting through the real key-value store
of :mod:`benchmarks.evaluation.ranks` and sharing their shards on disk, as two processes
of a job do (the slow tests in test_evaluation_jobs.py run real processes).
"""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
import torch

from baselines import BlockDiffusion
from benchmarks.evaluation.ranks import evaluation_ranks
from benchmarks.evaluation.shards import Sharding
from benchmarks.runtime.distributed import World
from benchmarks.tasks.image_sampling import draw_image_batches, sharded_features
from benchmarks.tasks.likelihood import block_nll
from benchmarks.tasks.text_samples import draw_text_samples
from prime import MaskedDiffusion, SamplerConfig, SubTokenizer
from tests.baselines.test_block_diffusion import _network

CPU = torch.device("cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_ranks(size: int, root, work):
    """``work(sharding)`` on ``size`` ranks (threads) sharing ``root``; the results by rank.
    Models are built before (their seeding uses the global generator, which threads share)."""
    port = free_port() - 2  # the evaluation's store listens at the job's port + 2
    results, errors = [None] * size, []

    def rank(r: int) -> None:
        try:
            ranks = evaluation_ranks(World(rank=r, size=size, main_port=port), None)
            results[r] = work(Sharding(root, ranks, "model-a"))
            ranks.close()
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def _prime() -> MaskedDiffusion:
    codec = SubTokenizer(25, 2)
    return MaskedDiffusion(_network(codec, seed=3), codec).double()


def _block() -> BlockDiffusion:
    codec = SubTokenizer(25, 2)
    return BlockDiffusion(_network(codec, seed=2), codec, 3).double()


BLOCKS = np.random.default_rng(0).integers(0, 25, size=(10, 6))


@pytest.mark.parametrize("strata", ["set", "batch"])
@pytest.mark.parametrize("make", [_prime, _block], ids=["prime", "block-diffusion"])
def test_likelihood_on_two_ranks_is_one_process_likelihood_bit_for_bit(tmp_path, strata, make):
    model = make()

    def nll(sharding=None):
        return block_nll(
            model, BLOCKS, passes=2, batch=3, seed=5, device=CPU, strata=strata, sharding=sharding
        )

    alone = nll()
    split = on_ranks(2, tmp_path, nll)
    assert alone.keys() == {"published", "valid_bound"}
    for rank in split:  # every rank gathers the whole result
        for name in alone:
            assert torch.equal(rank[name], alone[name]), name
    # Four batches x two passes: shards 0, 2, 4, 6 by rank 0, the others by rank 1.
    assert sorted(p.name for p in (tmp_path / "likelihood").glob("*.npz")) == [
        f"{i:06d}.npz" for i in range(8)
    ]


def test_text_samples_on_two_ranks_are_one_process_samples(tmp_path):
    config = SamplerConfig(steps=5)
    model = _block()

    def draw(sharding=None):
        return draw_text_samples(model, 6, 2, 7, config, 11, CPU, sharding=sharding)

    alone = draw()
    for rank in on_ranks(2, tmp_path, draw):
        assert torch.equal(rank.tokens, alone.tokens)
        assert torch.equal(rank.idle_ratio, alone.idle_ratio)
        assert rank.nfe == alone.nfe and rank.invalid_rate == alone.invalid_rate
    seconds = [b.seconds for b in alone.results]
    assert len(seconds) == 3 and all(s > 0 for s in seconds)  # the speed's raw figures


@pytest.mark.parametrize("seeding", ["per-batch", "stream"])
def test_image_samples_on_two_ranks_are_one_process_samples(tmp_path, seeding):
    config = SamplerConfig(steps=4)
    model = _prime()

    def draw(sharding=None):
        sharding = sharding or Sharding()
        batches = draw_image_batches(
            model, 5, 2, 6, config, 9, seeding, CPU, False, sharding, "samples"
        )
        return torch.cat([b.tokens for b in batches]), [b.nfe for b in batches]

    alone = draw()
    for tokens, nfe in on_ranks(2, tmp_path, draw):
        assert torch.equal(tokens, alone[0]) and nfe == alone[1]
    assert alone[0].shape == (5, 6)


class _Features:
    """A stand-in extractor: per image, its mean over each channel and the batch's size
    (the second column exposes any batch that differs from one process's)."""

    name, batch_size = "stand-in", 2

    def __init__(self):
        self.batches: list[int] = []

    def _batch(self, images):
        x = torch.as_tensor(np.asarray(images)).double()
        out = [
            torch.cat(
                [
                    x[i : i + 2].mean((2, 3)),
                    torch.full((len(x[i : i + 2]), 1), 1.0 * len(x[i : i + 2])),
                ],
                1,
            )
            for i in range(0, len(x), 2)
        ]
        return torch.cat(out).numpy()

    def __call__(self, images, desc=""):
        return self._batch(images)

    def pool_and_logits(self, images, desc=""):
        f = self._batch(images)
        return f, -f


def test_features_on_two_ranks_are_one_process_features(tmp_path, monkeypatch):
    monkeypatch.setattr("benchmarks.tasks.image_sampling.FEATURE_BATCHES_PER_SHARD", 2)
    images = np.random.default_rng(1).integers(0, 256, size=(11, 3, 4, 4), dtype=np.uint8)
    alone = sharded_features(_Features(), images, Sharding(), "f", logits=True)
    split = on_ranks(2, tmp_path, lambda s: sharded_features(_Features(), images, s, "f", True))
    for features, logits in split:
        assert np.array_equal(features, alone[0]) and np.array_equal(logits, alone[1])
    assert alone[0].shape == (11, 4)
    # Three shards of four images (two batches of two) and one of three.
    assert len(list((tmp_path / "f").glob("*.npz"))) == 3
