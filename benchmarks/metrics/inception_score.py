"""Inception Score from the FID Inception's 1008-way classifier, as torch-fidelity defines it.

For N samples with class probabilities p_i = softmax(l_i) of the classifier's logits
without bias (torch-fidelity's ``logits_unbiased``, l_i = W g_i for the 2048-d pool
features g_i), in a fixed random order (numpy ``RandomState(2020).permutation(N)``),
split into S consecutive parts P_k = [k N // S, (k + 1) N // S), k = 0..S-1:

    IS_k = exp( (1 / |P_k|) sum_{i in P_k} KL(p_i || q_k) ),   q_k = mean_{i in P_k} p_i,

reported as the mean and the population standard deviation (ddof 0) of IS_1..IS_S, in
float64 (``torch_fidelity.metric_isc.isc_features_to_metric``, S = 10). IS lies in
[1, min(|P_k|, 1008)]: 1 when every sample in a part has the same p, |P_k| when they are
one-hot on distinct classes.

The classifier comes from torch-fidelity's own weights file, which torch-fidelity would
download at run time; this suite never does. ``classifier_weights_file`` finds it in the
suite's cache folder or in torch hub's checkpoint folder and otherwise says how to put it
there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = [
    "classifier_file_name",
    "classifier_weights",
    "classifier_weights_file",
    "inception_score",
    "inception_score_of_probabilities",
    "split_bounds",
    "SPLITS",
]

SPLITS = 10  # torch-fidelity's isc_splits, and torchmetrics' splits
SHUFFLE_SEED = 2020  # torch-fidelity's default rng_seed


def classifier_file_name() -> str:
    """The name torch-fidelity saves its Inception weights under."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3.rsplit("/", 1)[-1]


def classifier_weights_file(cache_dir: Path) -> Path:
    """torch-fidelity's Inception weights (with the classifier), from ``cache_dir`` or
    torch hub's ``checkpoints`` folder (where torch-fidelity saves them when it downloads
    them); else FileNotFoundError saying how to provide them offline."""
    name = classifier_file_name()
    places = [Path(cache_dir), Path(torch.hub.get_dir()) / "checkpoints"]
    for place in places:
        if (place / name).is_file():
            return place / name
    raise FileNotFoundError(
        f"task.inception_score needs torch-fidelity's Inception weights with their 1008-way "
        f"classifier, the file {name}, found in neither {places[0]} nor {places[1]}. The "
        "offline FID weights have no classifier. On a machine with network access, "
        "`python -c 'import torch, torch_fidelity.feature_extractor_inceptionv3 as m; "
        "torch.hub.load_state_dict_from_url(m.URL_INCEPTION_V3)'` saves it into torch hub's "
        f"checkpoints folder; copy it into either folder above (or set TORCH_HOME), or set "
        "task.inception_score=false."
    )


def classifier_weights(cache_dir: Path, fid_weights: Path) -> tuple[Path, bool]:
    """(torch-fidelity's weights file, whether its network below the classifier is the
    offline FID network of ``fid_weights``, so that its pool features may share that
    network's caches)."""
    path = classifier_weights_file(cache_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated copy, or not a state dict at all
        raise RuntimeError(f"{path}: not a readable torch state dict ({exc})") from exc
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048) or not bool(fc.abs().sum() > 0):
        raise RuntimeError(
            f"{path}: expected torch-fidelity's InceptionV3 state dict with a nonzero "
            "fc.weight of shape (1008, 2048)"
        )
    fid = torch.load(fid_weights, map_location="cpu", weights_only=True)
    body = [k for k in fid if not k.startswith("fc.")]
    same = set(state) == set(fid) and all(
        torch.allclose(state[k].float(), fid[k].float(), rtol=1e-6, atol=1e-7) for k in body
    )
    return path, same


def split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    """[start, end) of the ``splits`` consecutive parts of n rows: k n // S to (k+1) n // S
    (sizes differ by at most one, the larger ones last)."""
    if splits < 1 or n < splits:
        raise ValueError(f"Inception Score: {n} samples cannot fill {splits} splits")
    return [(k * n // splits, (k + 1) * n // splits) for k in range(splits)]


def _split_scores(p: torch.Tensor, log_p: torch.Tensor, splits: int) -> tuple[float, float]:
    scores = []
    for start, end in split_bounds(p.shape[0], splits):
        part, log_part = p[start:end], log_p[start:end]
        log_q = part.mean(dim=0, keepdim=True).log()
        # p log p is 0 where p is 0 (one-hot rows), whatever log p is there.
        kl = torch.where(part > 0, part * (log_part - log_q), 0.0).sum(dim=1)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def _ordered(x: torch.Tensor, shuffle: bool, seed: int) -> torch.Tensor:
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"Inception Score: expected (N, classes) rows, got {tuple(x.shape)}")
    if not shuffle:
        return x
    return x[torch.from_numpy(np.random.RandomState(seed).permutation(x.shape[0]))]


def inception_score(
    logits: np.ndarray | torch.Tensor,
    splits: int = SPLITS,
    shuffle: bool = True,
    seed: int = SHUFFLE_SEED,
) -> tuple[float, float]:
    """(mean, std) of IS over ``splits`` parts of (N, classes) logits, p = softmax(logits);
    ``shuffle`` orders the rows by ``RandomState(seed)`` first, as torch-fidelity does."""
    x = _ordered(torch.as_tensor(np.asarray(logits)).double(), shuffle, seed)
    return _split_scores(x.softmax(dim=1), x.log_softmax(dim=1), splits)


def inception_score_of_probabilities(
    probabilities: np.ndarray | torch.Tensor,
    splits: int = SPLITS,
    shuffle: bool = True,
    seed: int = SHUFFLE_SEED,
) -> tuple[float, float]:
    """``inception_score`` of (N, classes) rows of class probabilities (each row >= 0,
    summing to 1; zeros allowed)."""
    p = _ordered(torch.as_tensor(np.asarray(probabilities)).double(), shuffle, seed)
    if bool((p < 0).any()) or not torch.allclose(p.sum(dim=1), torch.ones(len(p)).double()):
        raise ValueError("Inception Score: each row of probabilities must be >= 0 and sum to 1")
    return _split_scores(p, p.log(), splits)
