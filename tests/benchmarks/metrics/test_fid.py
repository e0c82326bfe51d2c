"""FID: offline Inception weights in torch-fidelity's extractor, and the Frechet distance."""

import numpy as np
import pytest
import torch

from benchmarks.metrics.fid import (
    convert,
    converted_weights_path,
    feature_statistics,
    frechet_distance,
    offline_weights_file,
)
from tests.helpers import StandInFeatures


def _features(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift


def test_frechet_distance_matches_torch_fidelity_and_clean_fid():
    from cleanfid.fid import frechet_distance as clean_fid_distance
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    a, b = _features(1500, 256, 0.0, 0), _features(1500, 256, 0.3, 1)
    mu_a, s_a = feature_statistics(a)
    mu_b, s_b = feature_statistics(b)
    ours = frechet_distance(mu_a, s_a, mu_b, s_b)
    fidelity = fid_statistics_to_metric(
        fid_features_to_statistics(torch.from_numpy(a)),
        fid_features_to_statistics(torch.from_numpy(b)),
        verbose=False,
    )["frechet_inception_distance"]
    clean = clean_fid_distance(mu_a, s_a, mu_b, s_b)
    assert ours > 1.0
    assert abs(ours - fidelity) <= 1e-6 * ours
    assert abs(ours - clean) <= 1e-6 * ours
    assert abs(frechet_distance(mu_a, s_a, mu_a, s_a)) < 1e-8 * np.trace(s_a)


def test_offline_weights_give_torch_fidelitys_features(tmp_path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    path = converted_weights_path(tmp_path)
    assert converted_weights_path(tmp_path) == path  # converted once, then reused
    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
    )
    torchscript = torch.jit.load(str(offline_weights_file()), map_location="cpu").eval()
    images = torch.randint(
        0, 256, (3, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    with torch.no_grad():
        (features,) = extractor(images)
        # The TorchScript is the bare network: give it torch-fidelity's preprocessing.
        x = interpolate_bilinear_2d_like_tensorflow1x(
            images.float(), size=(299, 299), align_corners=False
        )
        reference = torchscript((x - 128) / 128)
    assert features.shape == (3, 2048)
    assert torch.allclose(features, reference, atol=1e-5)
    assert float(features.abs().mean()) > 0.05  # real activations, not zeros


def test_conversion_maps_every_tensor():
    state = convert()
    assert sum(k.endswith("conv.weight") for k in state) == 94  # every conv of Inception-v3
    assert torch.equal(state["fc.weight"], torch.zeros(1008, 2048))  # no logits offline


def _check_extractor(extractor, gray, other, dim):
    from benchmarks.tasks.image_scores import kernel_inception_distance

    a, b = extractor(gray), extractor(other)
    assert a.shape == (len(gray), dim) and np.isfinite(a).all()
    assert frechet_distance(*feature_statistics(a), *feature_statistics(a)) < 1e-6
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) > 1e-3
    kid_mean, _ = kernel_inception_distance(a, b, subsets=10)
    assert kid_mean > 0
    return a


def _toy_images():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)  # Fashion-MNIST shaped
    return gray, (255 - gray) // 2


def test_kid_and_the_reference_cache_on_a_stand_in_extractor(tmp_path):
    from benchmarks.metrics.fid_reference import reference_features

    gray, other = _toy_images()
    extractor = StandInFeatures()
    _check_extractor(extractor, gray, other, extractor.dim)
    first = reference_features(gray, extractor, tmp_path, label="toy")
    cached = list((tmp_path / "fid-reference").glob("toy-*.npy"))
    assert len(cached) == 1 and extractor.name in cached[0].name
    assert np.array_equal(reference_features(gray, extractor, tmp_path, label="toy"), first)
    reference_features(other, extractor, tmp_path, label="toy")  # new content, new entry
    assert len(list((tmp_path / "fid-reference").glob("toy-*.npy"))) == 2


@pytest.mark.slow
def test_both_inception_pipelines_give_distances_and_differ_by_their_resize(tmp_path):
    from benchmarks.metrics.fid import CleanFIDFeatures, InceptionFeatures

    gray, other = _toy_images()
    fidelity = InceptionFeatures(tmp_path, batch_size=4)
    clean = CleanFIDFeatures(batch_size=4)
    for extractor in (fidelity, clean):
        a = _check_extractor(extractor, gray, other, 2048)
        assert frechet_distance(*feature_statistics(a), *feature_statistics(extractor(other))) > 1
    # Different resize filters: the two pipelines see slightly different inputs.
    assert not np.allclose(fidelity(gray[:2]), clean(gray[:2]))


def test_fast_extractor_matches_torch_fidelitys_reference_layout(tmp_path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from benchmarks.metrics.fid import InceptionFeatures

    images = np.random.default_rng(1).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    fast = InceptionFeatures(tmp_path)(images)  # channels-last memory layout
    plain = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048"],
        feature_extractor_weights_path=str(converted_weights_path(tmp_path)),
    )
    with torch.no_grad():
        (reference,) = plain(torch.from_numpy(images))
    assert np.allclose(fast, reference.double().numpy(), atol=1e-5)


def test_fid_through_the_sample_gram_matrix_equals_the_d_by_d_form():
    from benchmarks.metrics.fid import feature_statistics, frechet_distance
    from benchmarks.tasks.image_scores import fid_to_reference

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(500, 64)) @ rng.normal(size=(64, 64)) / 8
    mu_r, sigma_r = feature_statistics(ref)
    for n in (20, 63, 64, 200):  # rank-deficient sample covariance, and the d x d fallback
        x = rng.normal(0.3, 1.2, size=(n, 64))
        expected = frechet_distance(*feature_statistics(x), mu_r, sigma_r)
        assert np.isclose(fid_to_reference(x, mu_r, sigma_r), expected, rtol=1e-6), n


def test_fid_half_sample_se_matches_the_spread_over_independent_sample_sets():
    from benchmarks.metrics.fid import feature_statistics
    from benchmarks.tasks.image_scores import fid_half_sample_se, fid_to_reference

    rng = np.random.default_rng(1)
    for d, n in [(64, 50), (16, 200)]:  # the Gram-matrix path (N/2 < d), and the d x d one
        ref = rng.normal(size=(20_000, d))
        mu_r, sigma_r = feature_statistics(ref)
        model = lambda k: rng.normal(0.2, 1.3, size=(k, d))  # noqa: B023, E731
        spread = np.std([fid_to_reference(model(n), mu_r, sigma_r) for _ in range(300)], ddof=1)
        estimates = [
            fid_half_sample_se(model(n), mu_r, sigma_r, resamples=60, seed=s) for s in range(5)
        ]
        assert 0.8 < np.median(estimates) / spread < 1.35, (d, n)


def test_fid_half_sample_se_is_the_sd_of_fid_over_the_same_halves():
    from benchmarks.metrics.fid import feature_statistics
    from benchmarks.tasks.image_scores import fid_half_sample_se, fid_to_reference

    rng = np.random.default_rng(2)
    x, ref = rng.normal(0.1, 1.1, size=(40, 64)), rng.normal(size=(300, 64))
    mu_r, sigma_r = feature_statistics(ref)
    draws = np.random.default_rng(7)
    halves = [draws.choice(40, 20, replace=False) for _ in range(6)]
    direct = [fid_to_reference(x[i], mu_r, sigma_r) for i in halves]
    assert np.isclose(
        fid_half_sample_se(x, mu_r, sigma_r, 6, seed=7), np.std(direct, ddof=1), rtol=1e-6
    )


def test_kid_of_whole_sets_is_the_unbiased_mmd_and_computed_once():
    from benchmarks.tasks.image_scores import kernel_inception_distance

    a, b = _features(40, 8, 0.0, 0), _features(40, 8, 0.5, 1)

    def kernel(x, y):
        return (x @ y.T / x.shape[1] + 1.0) ** 3

    m = len(a)
    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    off = ~np.eye(m, dtype=bool)
    mmd2 = k_aa[off].mean() + k_bb[off].mean() - 2 * k_ab.mean()
    kid, std = kernel_inception_distance(a, b, subsets=50)
    assert abs(kid - mmd2) <= 1e-9 * abs(mmd2) and std == 0.0
    smaller, spread = kernel_inception_distance(a, b, subsets=50, subset_size=20)
    assert spread > 0 and abs(smaller - mmd2) < 5 * spread  # random subsets: same target
