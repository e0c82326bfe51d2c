"""Inception Score: closed forms, torch-fidelity's definition, its weights, the image task."""

import math

import numpy as np
import pytest
import torch

from benchmarks.metrics.fid import converted_weights_path
from benchmarks.metrics.inception_score import (
    classifier_file_name,
    classifier_weights,
    classifier_weights_file,
    inception_score,
    inception_score_of_probabilities,
    split_bounds,
)
from tests.helpers import StandInFeatures


def test_identical_rows_score_one():
    rows = np.tile(np.random.default_rng(0).dirichlet(np.ones(7)), (40, 1))
    assert inception_score_of_probabilities(rows) == pytest.approx((1.0, 0.0), abs=1e-12)
    logits = np.tile(np.random.default_rng(1).normal(size=12), (30, 1))
    assert inception_score(logits) == pytest.approx((1.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("shuffle", [False, True])
def test_distinct_one_hot_rows_score_the_classes_per_split(shuffle):
    # 50 rows one-hot on 50 classes: every split of 5 has q uniform on its 5 classes and
    # KL(p_i || q) = log 5 for each row, so IS = 5 in every split, whatever the order.
    assert inception_score_of_probabilities(np.eye(50), shuffle=shuffle) == pytest.approx(
        (5.0, 0.0), abs=1e-12
    )
    # Logits that put almost all mass on one class approach the same limit.
    assert inception_score(60.0 * np.eye(50), shuffle=shuffle)[0] == pytest.approx(5.0, abs=1e-9)


def test_worked_examples():
    # p_1 = (1, 0), p_2 = (1/2, 1/2): q = (3/4, 1/4), KL_1 = log 4/3, KL_2 = (1/2) log 4/3,
    # so IS = exp((3/4) log 4/3) = (4/3)^(3/4).
    rows = np.array([[1.0, 0.0], [0.5, 0.5]])
    mean, std = inception_score_of_probabilities(rows, splits=1, shuffle=False)
    assert mean == pytest.approx((4 / 3) ** 0.75, rel=1e-12) and std == 0.0
    # Two splits scoring 1 (identical rows) and 2 (one-hot on two classes): mean 1.5 and
    # the population SD 0.5 (ddof 0, as torch-fidelity's np.std; ddof 1 would give 0.71).
    rows = np.array([[0.3, 0.7], [0.3, 0.7], [1.0, 0.0], [0.0, 1.0]])
    mean, std = inception_score_of_probabilities(rows, splits=2, shuffle=False)
    assert (mean, std) == pytest.approx((1.5, 0.5), abs=1e-12)


def test_splits_are_consecutive_with_the_larger_ones_last():
    assert split_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert split_bounds(10, 10) == [(k, k + 1) for k in range(10)]
    # 7 distinct one-hot rows in splits of 2, 2, 3 score 2, 2, 3 (torch.chunk's 3, 3, 1
    # would score 3, 3, 1).
    mean, std = inception_score_of_probabilities(np.eye(7), splits=3, shuffle=False)
    assert mean == pytest.approx(7 / 3, rel=1e-12)
    assert std == pytest.approx(math.sqrt(2) / 3, rel=1e-12)
    with pytest.raises(ValueError, match="9 samples cannot fill 10 splits"):
        inception_score(np.zeros((9, 4)))


def test_matches_torch_fidelitys_inception_score():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(2).normal(0.0, 3.0, size=(103, 20))
    for shuffle in (False, True):  # torch-fidelity shuffles by default, with seed 2020
        theirs = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=shuffle)
        ours = inception_score(logits, shuffle=shuffle)
        assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
        assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9)
    probabilities = torch.from_numpy(logits).softmax(dim=1).numpy()
    assert inception_score_of_probabilities(probabilities) == pytest.approx(
        inception_score(logits), rel=1e-12
    )


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score_of_probabilities(np.full((20, 3), 0.5))
    with pytest.raises(ValueError, match=r"\(N, classes\)"):
        inception_score(np.zeros(20))


def test_absent_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    from benchmarks.metrics.fid import InceptionFeatures
    from benchmarks.tasks.image_params import ImageParams
    from benchmarks.tasks.images import ImageGeneration

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    name = classifier_file_name()
    assert name == "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(FileNotFoundError) as info:
        classifier_weights_file(tmp_path / "cache")
    message = str(info.value)
    for part in (name, str(tmp_path / "cache"), str(tmp_path / "torch" / "hub" / "checkpoints")):
        assert part in message
    assert "URL_INCEPTION_V3" in message and "task.inception_score=false" in message
    with pytest.raises(FileNotFoundError, match=name):
        InceptionFeatures(tmp_path / "cache", logits=True)
    # The image task stops before it loads data or trains.
    task = ImageGeneration(ImageParams(dataset="cifar10", inception_score=True), None)
    with pytest.raises(FileNotFoundError, match=name):
        task.train_rows()


@pytest.fixture(scope="module")
def fid_cache(tmp_path_factory):
    """A cache folder holding the converted offline FID weights (converted once), and
    their state dict."""
    cache = tmp_path_factory.mktemp("cache")
    return cache, torch.load(converted_weights_path(cache), weights_only=True)


def _classifier_file(fid_state, hub, fc_scale: float = 0.05, body_offset: float = 0.0):
    """A stand-in for torch-fidelity's file in torch hub's folder: the offline FID
    network plus a random classifier (the real file is not on this machine)."""
    g = torch.Generator().manual_seed(0)
    conv = "Conv2d_1a_3x3.conv.weight"
    state = {
        **fid_state,
        "fc.weight": fc_scale * torch.randn(1008, 2048, generator=g),
        "fc.bias": torch.randn(1008, generator=g),
        conv: fid_state[conv] + body_offset,
    }
    path = hub / "hub" / "checkpoints" / classifier_file_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path, state


@pytest.mark.slow  # two Inception networks built and run on a CPU
def test_logits_come_from_the_same_pass_as_the_fid_features(fid_cache, tmp_path, monkeypatch):
    from benchmarks.metrics.fid import InceptionFeatures

    cache, fid_state = fid_cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, state = _classifier_file(fid_state, tmp_path)
    assert classifier_weights(cache, converted_weights_path(cache)) == (path, True)
    plain, with_logits = InceptionFeatures(cache), InceptionFeatures(cache, logits=True)
    assert with_logits.name == plain.name  # same network: the FID caches are shared
    images = np.random.default_rng(3).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    pool, logits = with_logits.pool_and_logits(images)
    assert np.allclose(pool, plain(images), atol=1e-5)
    assert logits.shape == (1, 1008)
    # logits_unbiased: W g without the bias.
    assert np.allclose(logits, pool @ state["fc.weight"].double().numpy().T, atol=1e-3)
    with pytest.raises(RuntimeError, match="no classifier logits"):
        plain.pool_and_logits(images)


def test_a_classifier_file_of_another_network_is_told_apart(fid_cache, tmp_path, monkeypatch):
    cache, fid_state = fid_cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, _ = _classifier_file(fid_state, tmp_path, body_offset=1e-3)
    assert classifier_weights(cache, converted_weights_path(cache)) == (
        path,
        False,
    )  # InceptionFeatures renames it
    _classifier_file(fid_state, tmp_path, fc_scale=0.0)  # the FID weights' zero classifier
    with pytest.raises(RuntimeError, match="nonzero fc.weight"):
        classifier_weights(cache, converted_weights_path(cache))
    path.write_bytes(b"not a state dict")
    with pytest.raises(RuntimeError, match="not a readable torch state dict"):
        classifier_weights(cache, converted_weights_path(cache))


class StandInWithLogits(StandInFeatures):
    """StandInFeatures plus fixed logits of its features, as ``pool_and_logits`` gives."""

    def pool_and_logits(self, images, desc: str = "features"):
        feats = self(images, desc)
        g = torch.Generator().manual_seed(1)
        weight = torch.randn(self.dim, 1008, generator=g, dtype=torch.float64).numpy()
        return feats, 3.0 * feats @ weight


def test_image_scores_log_inception_score_beside_fid(tmp_path):
    from benchmarks.tasks.image_scores import image_scores

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    reference = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    extractor = StandInWithLogits()
    args = (images, reference, [("", extractor)], tmp_path, "toy", {})
    metrics = {m.name: m for m in image_scores(*args, suffix="_steps4", inception_score_splits=10)}
    expected = inception_score(extractor.pool_and_logits(images)[1], splits=10)
    assert (metrics["is_mean_steps4"].value, metrics["is_std_steps4"].value) == expected
    assert expected[0] > 1.0 and metrics["is_mean_steps4"].card["splits"] == 10
    assert metrics["is_mean_steps4"].card["samples"] == 30 and "fid_steps4" in metrics
    plain = {m.name for m in image_scores(*args)}
    assert "fid" in plain and not any(n.startswith("is_") for n in plain)


def test_inception_score_is_a_later_image_setting_on_in_table3():
    from benchmarks.config.experiments import load_experiment
    from benchmarks.tasks.image_params import ImageParams

    assert ImageParams().inception_score is False
    assert "inception_score" in ImageParams.LATER_FIELDS  # off: run ids unchanged
    for config in load_experiment("table3").resolve("paper", None, None):
        assert config.task.params.inception_score is True, config.variant
