"""Generative perplexity against hand computations with judges known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.metrics.gen_ppl import generative_perplexity, scored_positions
from benchmarks.metrics.judge import Judge

ALPHABET = "abc|"  # '|' is the judge's EOS, id 3
EOS = 3


class BigramJudge:
    """p(next | prev) = table[prev, next]; characters are tokens."""

    eos_id = EOS

    def __init__(self, table: np.ndarray, context_size: int = 64):
        self.table = np.asarray(table, dtype=np.float64)
        self.context_size = context_size
        self.name = "bigram test judge"
        self.calls: list[tuple[int, int]] = []

    def encode(self, texts, max_length=None):
        return [[ALPHABET.index(ch) for ch in t][:max_length] for t in texts]

    def token_nll(self, ids, attention_mask):
        self.calls.append(tuple(ids.shape))
        logp = torch.from_numpy(np.log(self.table))
        return -logp[ids[:, :-1], ids[:, 1:]]

    def features(self, texts):
        raise NotImplementedError


UNIFORM = np.full((4, 4), 0.25)
# Rows sum to 1; every entry distinct enough that a wrong position shows.
TABLE = np.array(
    [
        [0.1, 0.5, 0.3, 0.1],
        [0.2, 0.2, 0.4, 0.2],
        [0.6, 0.1, 0.1, 0.2],
        [0.25, 0.35, 0.3, 0.1],
    ]
)


def _by_hand(texts, table, max_length, context, batch_size=None, group=None):
    """Loops over characters: in each group of texts, pad with '|' to the group's longest,
    keep whole batches, cut into context-size chunks, score position i > 0 of a chunk
    unless it is an EOS after the chunk's first EOS."""
    group = group or len(texts)
    nll, count = 0.0, 0
    for g in range(0, len(texts), group):
        rows = [t[:max_length] for t in texts[g : g + group]]
        width = max(len(r) for r in rows)
        b = min(batch_size or len(rows), len(rows))
        for row in rows[: (len(rows) // b) * b]:
            padded = row + "|" * (width - len(row))
            for start in range(0, width, context):
                chunk = padded[start : start + context]
                eos_seen = 0
                for i, ch in enumerate(chunk):
                    eos_seen += ch == "|"
                    if i == 0 or (ch == "|" and eos_seen > 1):
                        continue
                    nll -= math.log(table[ALPHABET.index(chunk[i - 1]), ALPHABET.index(ch)])
                    count += 1
    return math.exp(nll / count), count


def test_the_fake_judge_is_a_judge():
    assert isinstance(BigramJudge(UNIFORM), Judge)


def test_uniform_judge_gives_the_vocabulary_size_and_the_eos_rule_counts():
    # 0, 1 and 2 EOS, a text starting with EOS, all padded to the longest (6 tokens).
    texts = ["abc", "ab|c", "a|b|c", "|ab", "abcabc"]
    result = generative_perplexity(texts, BigramJudge(UNIFORM), max_length=16, batch_size=5)
    assert result.value == pytest.approx(4.0, rel=1e-12)
    # abc|||: b c | -> 3; ab|c||: b | c -> 3; a|b|c|: | b c -> 3;
    # |ab|||: a b -> 2 (the EOS at position 0 is the first one); abcabc: 5.
    assert result.tokens == 3 + 3 + 3 + 2 + 5
    assert result.nll_sum == pytest.approx(16 * math.log(4))


def test_scored_positions_of_single_rows():
    ids = torch.tensor([[0, 1, EOS, 2, EOS, EOS], [EOS, 0, EOS, 1, 2, EOS]])
    expected = torch.tensor([[True, True, True, False, False], [True, False, True, True, False]])
    assert torch.equal(scored_positions(ids, EOS), expected)


def test_bigram_judge_matches_the_hand_computation():
    texts = ["abc", "ab|c", "a|b|c", "|ab", "cabbac|a", "ccc"]
    result = generative_perplexity(texts, BigramJudge(TABLE), max_length=16, batch_size=3)
    value, count = _by_hand(texts, TABLE, 16, 64)
    assert result.tokens == count
    assert result.value == pytest.approx(value, rel=1e-12)


def test_a_single_pair_is_one_over_its_probability():
    result = generative_perplexity(["ab"], BigramJudge(TABLE), max_length=8)
    assert result.value == pytest.approx(1 / TABLE[0, 1], rel=1e-12)
    assert result.tokens == 1


def test_rows_longer_than_the_context_are_scored_in_chunks_without_carried_context():
    judge = BigramJudge(TABLE, context_size=3)
    result = generative_perplexity(["abcabca"], judge, max_length=16)
    # Chunks abc | abc | a: b and c in each of the first two, nothing in the last.
    expected = math.exp(-(2 * math.log(TABLE[0, 1]) + 2 * math.log(TABLE[1, 2])) / 4)
    assert result.tokens == 4
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert judge.calls == [(1, 3), (1, 3)]  # the 1-token chunk is not sent


def test_chunks_truncation_and_eos_together():
    texts = ["ab|cab|ca|bc", "abcabcabcabcabc", "c|", "bbbb"]
    judge = BigramJudge(TABLE, context_size=4)
    result = generative_perplexity(texts, judge, max_length=10, batch_size=2)
    value, count = _by_hand(texts, TABLE, 10, 4)
    assert result.tokens == count
    assert result.value == pytest.approx(value, rel=1e-12)


def test_the_remainder_batch_is_dropped_as_in_mdlm_unless_asked():
    texts = ["abc", "cab", "bca", "aab", "ccb"]
    dropped = generative_perplexity(texts, BigramJudge(TABLE), max_length=8, batch_size=2)
    assert dropped.samples == 5 and dropped.samples_scored == 4
    assert dropped.value == pytest.approx(_by_hand(texts, TABLE, 8, 64, 2)[0], rel=1e-12)
    kept = generative_perplexity(
        texts, BigramJudge(TABLE), max_length=8, batch_size=2, drop_remainder=False
    )
    assert kept.samples_scored == 5
    assert kept.value == pytest.approx(_by_hand(texts, TABLE, 8, 64)[0], rel=1e-12)
    assert any("every text scored" in d for d in kept.card()["differences_from_mdlm"])


def test_texts_padded_together_score_the_first_padding_eos_texts_alone_do_not():
    texts = ["abc", "abcabc", "ab|"]
    together = generative_perplexity(texts, BigramJudge(UNIFORM), max_length=8)
    alone = generative_perplexity(texts, BigramJudge(UNIFORM), max_length=8, group=1)
    # Together (width 6): abc|||: 3, abcabc: 5, ab||||: 2. Alone: abc: 2, 5, ab|: 2.
    assert (together.tokens, alone.tokens) == (10, 9)
    assert alone.card()["retokenization"].endswith("each call of 1 texts")
    texts = ["abc", "cabbac|a", "ccc", "b|ca", "bbbbbbb"]
    for group, batch in [(1, 1), (2, 1), (2, 2), (3, 2), (None, 2)]:
        result = generative_perplexity(
            texts, BigramJudge(TABLE), max_length=6, batch_size=batch, group=group
        )
        value, count = _by_hand(texts, TABLE, 6, 64, batch, group)
        assert result.tokens == count
        assert result.value == pytest.approx(value, rel=1e-12)


def test_batch_size_does_not_change_the_value_when_it_divides_the_count():
    texts = ["abc|", "cab", "b|ca", "aabcc"]
    values = [
        generative_perplexity(texts, BigramJudge(TABLE), max_length=8, batch_size=b).value
        for b in (1, 2, 4, 100)
    ]
    assert values == pytest.approx([values[0]] * 4, rel=1e-12)


def test_card_names_the_conventions():
    result = generative_perplexity(["abc", "ab"], BigramJudge(TABLE), max_length=8)
    card = result.card()
    assert card["judge"] == "bigram test judge"
    assert card["batch_size"] == 2 and card["samples"] == 2
    assert "first EOS" in card["eos"] and "pooled" in card["mean"]
    assert "8 tokens" in card["retokenization"]
    assert card["differences_from_mdlm"]


def test_bad_input_is_named():
    judge = BigramJudge(TABLE)
    with pytest.raises(TypeError, match="texts"):
        generative_perplexity("abc", judge, max_length=8)
    with pytest.raises(ValueError, match="texts"):
        generative_perplexity([], judge, max_length=8)
    with pytest.raises(ValueError, match="batch_size"):
        generative_perplexity(["abc"], judge, max_length=8, batch_size=0)
    with pytest.raises(ValueError, match="group"):
        generative_perplexity(["abc"], judge, max_length=8, group=0)
    with pytest.raises(ValueError, match="max_length"):
        generative_perplexity(["abc"], judge, max_length=0)
    with pytest.raises(ValueError, match="no token to score"):
        generative_perplexity(["a", "b"], judge, max_length=8)
