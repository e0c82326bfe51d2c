"""Unigram entropy: closed forms, the mean over samples, units, and the judge's rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.metrics.entropy import judge_unigram_entropy, sample_entropy, unigram_entropy


def test_a_constant_sequence_has_zero_entropy():
    assert sample_entropy([7] * 50) == 0.0


@pytest.mark.parametrize("k", [1, 2, 5, 64])
def test_k_symbols_used_equally_give_log_k(k):
    ids = list(range(k)) * 3
    assert sample_entropy(ids) == pytest.approx(math.log(k), abs=1e-12)
    assert sample_entropy(ids, base=2) == pytest.approx(math.log2(k), abs=1e-12)


def test_uneven_counts():
    # p = (1/2, 1/4, 1/4): H = 1.5 bits.
    assert sample_entropy([3, 3, 1, 2], base=2) == pytest.approx(1.5, abs=1e-12)


def test_the_metric_is_the_mean_over_samples_not_a_pooled_histogram():
    rows = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    result = unigram_entropy(rows)
    assert result.value == 0.0  # pooled, the two samples would give log 2
    np.testing.assert_array_equal(result.per_sample, [0.0, 0.0])
    mixed = unigram_entropy([[0, 1], [2, 2, 2], [0, 1, 2, 3]])
    assert mixed.value == pytest.approx((math.log(2) + 0 + math.log(4)) / 3, abs=1e-12)
    assert mixed.unit == "nats" and unigram_entropy(rows, base=2).unit == "bits"


def test_judge_rows_count_the_eos_padding_as_mdm_prime_does():
    class CharJudge:
        name, eos_id, context_size = "chars", 9, 64

        def encode(self, texts, max_length=None):
            return [[ord(c) - ord("a") for c in t][:max_length] for t in texts]

    result = judge_unigram_entropy(["ab", "abcd"], CharJudge(), max_length=8, base=2)
    # "ab" is padded to a b EOS EOS: p = (1/4, 1/4, 1/2) -> 1.5 bits; "abcd": 2 bits.
    np.testing.assert_allclose(result.per_sample, [1.5, 2.0])
    assert "padding" in result.card()["tokens"] and result.card()["unit"] == "bits"
    alone = judge_unigram_entropy(["ab", "abcd"], CharJudge(), max_length=8, base=2, group=1)
    np.testing.assert_allclose(alone.per_sample, [1.0, 2.0])  # no padding


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="ids"):
        sample_entropy([])
    with pytest.raises(ValueError, match="token_ids"):
        unigram_entropy([])
    with pytest.raises(ValueError, match="base"):
        unigram_entropy([[1]], base=1)
