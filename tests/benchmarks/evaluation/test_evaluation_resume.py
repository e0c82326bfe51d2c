"""Evaluation resumes: a signal stops it at a shard boundary, every finished shard is
kept, and the next start computes only the missing shards, to the same numbers."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from benchmarks.evaluation.ranks import EvalRanks
from benchmarks.evaluation.shards import Sharding
from benchmarks.evaluation.signals import (
    SIGNAL_AT_SHARD_ENV,
    EvaluationInterrupted,
    EvaluationPreempted,
    EvaluationSignals,
)
from benchmarks.tasks.image_sampling import draw_image_batches
from benchmarks.tasks.likelihood import block_nll
from prime import MaskedDiffusion, SamplerConfig
from tests.benchmarks.evaluation.test_evaluation_ranks import BLOCKS, _prime

CPU = torch.device("cpu")


class _Counting(torch.nn.Module):
    """Counts the model's estimate and sampler calls (the work a resume must not redo)."""

    def __init__(self, model: MaskedDiffusion):
        super().__init__()
        self.model, self.calls = model, 0
        self.time_eps = model.time_eps

    def time_draws(self, seq_len):
        return self.model.time_draws(seq_len)

    def noisy_state(self, x0, t, generator=None):
        return self.model.noisy_state(x0, t, generator)

    def block_nll(self, x0, t, generator=None):
        self.calls += 1
        return self.model.block_nll(x0, t, generator)

    def sample(self, *args, **kwargs):
        self.calls += 1
        return self.model.sample(*args, **kwargs)


def _nll(model, root, strata="set", key="model-a"):
    with EvaluationSignals(0, root) as signals:
        sharding = Sharding(root, EvalRanks(signals=signals), key)
        return block_nll(
            model, BLOCKS, passes=2, batch=3, seed=5, device=CPU, strata=strata, sharding=sharding
        )


@pytest.mark.parametrize("strata", ["set", "batch"])
def test_a_warned_likelihood_stops_after_its_shard_and_resumes_the_rest(
    tmp_path, monkeypatch, strata
):
    reference = block_nll(_prime(), BLOCKS, passes=2, batch=3, seed=5, device=CPU, strata=strata)
    model = _Counting(_prime())
    monkeypatch.setenv(SIGNAL_AT_SHARD_ENV, "likelihood/2")
    with pytest.raises(EvaluationPreempted, match="after 3 shard"):
        _nll(model, tmp_path, strata)
    assert model.calls == 3 and len(list((tmp_path / "likelihood").glob("*.npz"))) == 3
    monkeypatch.delenv(SIGNAL_AT_SHARD_ENV)
    model.calls = 0
    resumed = _nll(model, tmp_path, strata)
    assert model.calls == 8 - 3  # only the missing shards
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), name


def test_ctrl_c_interrupts_at_a_shard_boundary(tmp_path, monkeypatch):
    monkeypatch.setenv(SIGNAL_AT_SHARD_ENV, "likelihood/1:SIGINT")
    with pytest.raises(EvaluationInterrupted, match="SIGINT after 2 shard"):
        _nll(_Counting(_prime()), tmp_path)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_shards_of_another_model_are_never_mixed_in(tmp_path):
    first = _nll(_prime(), tmp_path, key="model-a")
    other = _prime()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    model = _Counting(other)
    again = _nll(model, tmp_path, key="model-b")  # another model: the stage starts over
    assert model.calls == 8
    assert not torch.equal(again["valid_bound"], first["valid_bound"])
    model.calls = 0
    _nll(model, tmp_path, key="model-b")
    assert model.calls == 0  # its own shards: all kept


def test_a_stream_of_samples_resumes_from_the_generator_state_it_kept(tmp_path, monkeypatch):
    config = SamplerConfig(steps=4)

    def draw(model, root=None):
        with EvaluationSignals(0, tmp_path) as signals:
            sharding = Sharding(root, EvalRanks(signals=signals), "m")
            batches = draw_image_batches(
                model, 7, 2, 6, config, 9, "stream", CPU, False, sharding, "samples"
            )
        return torch.cat([b.tokens for b in batches])

    reference = draw(_prime())
    model = _Counting(_prime())
    monkeypatch.setenv(SIGNAL_AT_SHARD_ENV, "samples/1")
    with pytest.raises(EvaluationPreempted):
        draw(model, tmp_path)
    monkeypatch.delenv(SIGNAL_AT_SHARD_ENV)
    model.calls = 0
    assert torch.equal(draw(model, tmp_path), reference)
    assert model.calls == 4 - 2
    states = np.load(tmp_path / "samples" / "000001.npz")["generator_state"]
    assert states.dtype == np.uint8 and states.size > 0
