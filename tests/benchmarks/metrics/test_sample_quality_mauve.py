"""MAUVE from precomputed features (mauve-text): identical sets score ~1, far sets low."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.metrics.mauve_metric import MAUVE_DEFAULTS, mauve_score


def _gaussian(n: int, shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8)) + shift


def test_identical_feature_sets_score_one():
    x = _gaussian(200, 0.0, 0)
    result = mauve_score(x, x.copy(), featurizer="test gaussians")
    assert result.value > 0.9
    assert result.num_buckets == 20  # 'auto': N / 10


def test_well_separated_gaussians_score_low():
    result = mauve_score(_gaussian(200, 0.0, 0), _gaussian(200, 10.0, 1), featurizer="t")
    assert result.value < 0.2


def test_same_law_scores_higher_than_a_shifted_law():
    same = mauve_score(_gaussian(200, 0.0, 0), _gaussian(200, 0.0, 1), featurizer="t")
    shifted = mauve_score(_gaussian(200, 0.0, 0), _gaussian(200, 1.0, 1), featurizer="t")
    assert same.value > shifted.value


def test_card_names_the_settings_and_the_featurizer():
    x = _gaussian(40, 0.0, 0)
    card = mauve_score(x, x, featurizer="gpt2-large last token", seed=3).card()
    assert card["featurizer"] == "gpt2-large last token"
    assert card["mauve_scaling_factor"] == 5 and card["num_buckets"] == "auto"
    assert card["seed"] == 3 and card["kmeans_num_redo"] == MAUVE_DEFAULTS["kmeans_num_redo"]


def test_bad_input_is_named():
    x = _gaussian(40, 0.0, 0)
    with pytest.raises(ValueError, match="reference_features"):
        mauve_score(x, x[:, 0], featurizer="t")
    with pytest.raises(ValueError, match="d=8"):
        mauve_score(x, x[:, :4], featurizer="t")
    with pytest.raises(ValueError, match="unknown"):
        mauve_score(x, x, featurizer="t", scaling=5)
