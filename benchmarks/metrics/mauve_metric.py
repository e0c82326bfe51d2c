"""MAUVE of samples against reference text, from precomputed features (``mauve-text``).

Given sample features P (N_p, d) and reference features Q (N_q, d), ``mauve.compute_mauve``
(mauve-text 0.4.0, compute_mauve.py) L2-normalises the rows of [Q; P], keeps the leading
PCA components that explain ``kmeans_explained_var`` of the variance, clusters them with
faiss k-means into k buckets (k = max(2, round(min(N_p, N_q) / 10)) for 'auto'), and
takes the two bucket histograms p, q. With R_w = w p + (1 - w) q for w on a grid of
``divergence_curve_discretization_size`` points in (0, 1), the divergence curve is

    C = { (exp(-c KL(q || R_w)), exp(-c KL(p || R_w))) },   c = mauve_scaling_factor,

and MAUVE is the area under C (in [0, 1]; 1 when p = q). MDM-Prime (text/utils/
eval_utils.py, ``compute_mauve``) calls it with p = samples, q = references, features
from a SentenceTransformer (all-mpnet-base-v2) and ``mauve_scaling_factor=5``, every other
setting at the package default; MAUVE's own featurizer is GPT-2 Large's final-layer
hidden state at each text's last token (max 1024 tokens). This suite passes the judge's
features (:meth:`Judge.features`); the card names the featurizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MAUVE_DEFAULTS", "MauveResult", "mauve_score"]

# mauve.compute_mauve's defaults (mauve-text 0.4.0); MDM-Prime passes only the scaling 5.
MAUVE_DEFAULTS: dict[str, Any] = {
    "num_buckets": "auto",
    "pca_max_data": -1,
    "kmeans_explained_var": 0.9,
    "kmeans_num_redo": 5,
    "kmeans_max_iter": 500,
    "divergence_curve_discretization_size": 25,
    "mauve_scaling_factor": 5,
    "seed": 25,
}


@dataclass(frozen=True)
class MauveResult:
    value: float
    frontier_integral: float
    num_buckets: int
    samples: int
    references: int
    featurizer: str
    settings: dict[str, Any]

    def card(self) -> dict[str, object]:
        return {
            "metric": "MAUVE",
            "value": self.value,
            "package": "mauve-text (mauve.compute_mauve on precomputed features)",
            "featurizer": self.featurizer,
            "p": f"{self.samples} samples",
            "q": f"{self.references} references",
            "num_buckets_used": self.num_buckets,
            **self.settings,
        }


def _features(name: str, x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected a finite (N, d) array with N >= 2, got {a.shape}")
    return a


def mauve_score(
    sample_features: np.ndarray,
    reference_features: np.ndarray,
    *,
    featurizer: str,
    seed: int = MAUVE_DEFAULTS["seed"],
    **settings: Any,
) -> MauveResult:
    """MAUVE of (N_p, d) sample features against (N_q, d) reference features.

    ``featurizer`` names what made the features (e.g. a judge's name) for the card;
    ``settings`` override entries of :data:`MAUVE_DEFAULTS` (unknown names are an error).
    """
    unknown = sorted(set(settings) - set(MAUVE_DEFAULTS))
    if unknown:
        raise ValueError(f"mauve settings: unknown {unknown}; valid: {sorted(MAUVE_DEFAULTS)}")
    p = _features("sample_features", sample_features)
    q = _features("reference_features", reference_features)
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"features: samples have d={p.shape[1]}, references d={q.shape[1]}")
    try:
        import mauve
    except ImportError as err:
        raise ImportError(
            "MAUVE needs the 'mauve-text' package (GPL-3.0, an optional extra): "
            "pip install 'primebench[quality]' or pip install mauve-text"
        ) from err
    chosen = {**MAUVE_DEFAULTS, **settings, "seed": seed}
    out = mauve.compute_mauve(p_features=p, q_features=q, device_id=-1, verbose=False, **chosen)
    return MauveResult(
        value=float(out.mauve),
        frontier_integral=float(out.frontier_integral),
        num_buckets=int(out.num_buckets),
        samples=p.shape[0],
        references=q.shape[0],
        featurizer=featurizer,
        settings=chosen,
    )
