"""Sample-quality scores of generated images against a reference set (docs/method.md §7.3).

For N images with Inception pool features g_1..g_N and reference features r_1..r_M:

* FID = |mu_g - mu_r|^2 + tr(S_g) + tr(S_r) - 2 tr((S_g S_r)^(1/2)), biased upward at
  small N, so it is compared only at equal N;
* KID, the unbiased MMD^2 with the cubic polynomial kernel, mean and std over subsets;
* the real-data floor: the same scores for N real images that are in neither the
  reference set nor the training set. It is what N samples of a perfect model would
  score, so a model's FID reads against it (a ratio of 1 is the best N samples can do);
* the standard error of FID over the sampling of the N images, by half-sampling: the
  SD of FID over R random halves of the N features, the reference fixed. It holds the
  noise of the samples, not that of training;
* optionally the Inception Score of the N images (mean and SD over 10 splits, as
  torch-fidelity: :mod:`benchmarks.metrics.inception_score`), from the classifier logits of the
  same network pass as their pool features.

With N <= d (1,000 samples, d = 2048), S_g = X^T X / (N - 1) for the centred (N, d)
features X, and the nonzero eigenvalues of S_g S_r are those of the (N, N) symmetric
X S_r X^T / (N - 1), so tr((S_g S_r)^(1/2)) is the sum of their square roots: one
N x N eigenvalue problem per resampling instead of two d x d ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import Metric
from ..metrics.fid import (
    CleanFIDFeatures,
    InceptionFeatures,
    feature_statistics,
    frechet_distance,
)
from ..metrics.fid_reference import reference_features
from ..metrics.inception_score import inception_score

__all__ = [
    "Extractors",
    "fid_half_sample_se",
    "fid_to_reference",
    "image_scores",
    "kernel_inception_distance",
]

Extractors = list[tuple[str, InceptionFeatures | CleanFIDFeatures]]
"""(metric suffix, extractor): the primary extractor has suffix "" and also gives KID."""


def kernel_inception_distance(
    features_1: np.ndarray, features_2: np.ndarray, subsets: int = 100, subset_size: int = 1000
) -> tuple[float, float]:
    """KID (unbiased MMD^2 with the kernel (x.y / d + 1)^3, over random subsets): (mean,
    std), computed by torch-fidelity; the subset size is capped at the smaller set. When
    the subset is the whole of both sets, every subset draws the same pairs (std 0), so
    one is computed rather than ``subsets`` identical ones."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(subset_size, len(features_1), len(features_2))
    if size == len(features_1) == len(features_2):
        subsets = 1
    out = kid_features_to_metric(
        torch.from_numpy(np.asarray(features_1)),
        torch.from_numpy(np.asarray(features_2)),
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_degree=3,
        kid_gamma=None,
        kid_coef0=1,
        verbose=False,
    )
    return float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"])


def _gram_fid(diff: np.ndarray, trace_g: float, trace_r: float, inner: np.ndarray) -> float:
    """|mu_g - mu_r|^2 + tr(S_g) + tr(S_r) - 2 tr((S_g S_r)^(1/2)), the last term from the
    eigenvalues of the (n, n) ``inner`` = X S_r X^T / (n - 1)."""
    evals = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(diff @ diff + trace_g + trace_r - 2.0 * np.sqrt(np.clip(evals, 0, None)).sum())


def fid_to_reference(features: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray) -> float:
    """FID of (N, d) features against reference statistics, through the (N, N) form when
    N <= d (the same value as ``frechet_distance`` of their statistics)."""
    x = np.asarray(features, dtype=np.float64)
    n, d = x.shape
    if n > d:
        return frechet_distance(*feature_statistics(x), mu_r, sigma_r)
    mu = x.mean(axis=0)
    xc = x - mu
    trace_g = float((xc * xc).sum()) / (n - 1)
    return _gram_fid(mu - mu_r, trace_g, np.trace(sigma_r), xc @ sigma_r @ xc.T / (n - 1))


def fid_half_sample_se(
    features: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray, resamples: int, seed: int
) -> float:
    """SD of FID over ``resamples`` random halves (without replacement) of the (N, d)
    sample features, against fixed reference statistics.

    For a smooth statistic T, Var(T of a random half | the N) ~ (2/N - 1/N) s^2 =
    Var(T_N): the spread over halves estimates the SE of FID at N (its bias at N/2 is
    the same for every half and drops out). The bootstrap with replacement does not:
    its repeated points shrink the sample covariance, and at N < d it overstates the
    SE 2-4 times.

    With Y the features less their mean, a half (rows idx, m = N/2) has centred
    features H P Y (H the m x m centring matrix), so its X S_r X^T is H (P G P^T) H for
    the Gram matrix G = Y S_r Y^T, and its tr(S_g) is tr(H P K P^T H) / (m - 1) for
    K = Y Y^T: both are computed once, and each half costs one m x m eigenvalue
    problem."""
    x = np.asarray(features, dtype=np.float64)
    n, d = x.shape
    m = n // 2
    rng = np.random.default_rng(seed)
    halves = [rng.choice(n, m, replace=False) for _ in range(resamples)]
    if m > d:
        return float(np.std([fid_to_reference(x[i], mu_r, sigma_r) for i in halves], ddof=1))
    mean = x.mean(axis=0)
    y = x - mean
    gram_r, gram = y @ sigma_r @ y.T, y @ y.T
    trace_r = np.trace(sigma_r)
    values = []
    for idx in halves:
        g = gram_r[np.ix_(idx, idx)]
        g = g - g.mean(axis=0) - g.mean(axis=1, keepdims=True) + g.mean()
        k = gram[np.ix_(idx, idx)]
        trace_g = (np.trace(k) - k.sum() / m) / (m - 1)
        diff = mean + y[idx].mean(axis=0) - mu_r
        values.append(_gram_fid(diff, trace_g, trace_r, g / (m - 1)))
    return float(np.std(values, ddof=1))


def image_scores(
    images: np.ndarray,
    reference: np.ndarray,
    extractors: Extractors,
    cache_dir: Path,
    label: str,
    card: dict[str, Any],
    suffix: str = "",
    cached_images: bool = False,
    resampling: tuple[int, int] = (0, 0),
    inception_score_splits: int = 0,
    features: dict[str, tuple[np.ndarray, np.ndarray | None]] | None = None,
) -> list[Metric]:
    """fid{x}{suffix} for every extractor x (suffix "" or "_cleanfid"), and kid{suffix},
    kid_std{suffix} and, with ``resampling`` = (R > 1, seed), fid_se{suffix} from the
    primary one, of (N, channels, H, W) uint8 ``images`` against the reference images
    (whose features are cached by content). ``cached_images`` caches the images'
    features too (real images that every run scores alike). With
    ``inception_score_splits`` S > 0, is_mean{suffix} and is_std{suffix} over S splits,
    from the primary extractor's ``pool_and_logits`` (not with ``cached_images``).
    ``features``: the images' (features, logits or None) by extractor suffix, computed
    already (e.g. over the ranks); the extractors compute the missing ones."""
    out = []
    for name, extractor in extractors:
        ref = reference_features(reference, extractor, cache_dir, label=label)
        logits = None
        if features is not None and name in features:
            feats, logits = features[name]
        elif cached_images:
            feats = reference_features(images, extractor, cache_dir, label=f"{label}-floor")
        elif inception_score_splits and not name:
            feats, logits = extractor.pool_and_logits(images, desc=f"sample features{suffix}")
        else:
            feats = extractor(images, desc=f"sample features{suffix}")
        mu_r, sigma_r = feature_statistics(ref)  # once for the FID and its SE
        fid = fid_to_reference(feats, mu_r, sigma_r)
        c = {
            **card,
            "samples": len(images),
            "reference": f"{label} ({len(reference)} images)",
            "extractor": extractor.name,
        }
        out.append(Metric(f"fid{name}{suffix}", fid, c))
        if not name:
            kid, kid_std = kernel_inception_distance(feats, ref, subsets=100)
            out += [Metric(f"kid{suffix}", kid, c), Metric(f"kid_std{suffix}", kid_std, c)]
            resamples, seed = resampling
            if resamples > 1:
                se = fid_half_sample_se(feats, mu_r, sigma_r, resamples, seed)
                out.append(Metric(f"fid_se{suffix}", se, {**c, "halves": resamples}))
            if logits is not None:
                mean, std = inception_score(logits, splits=inception_score_splits)
                c = {**c, "splits": inception_score_splits, "logits": "1008-way, no bias"}
                out += [Metric(f"is_mean{suffix}", mean, c), Metric(f"is_std{suffix}", std, c)]
    return out
