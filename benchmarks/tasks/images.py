"""Image generation: Table 3 and the ell x NFE table (PRIME_SPEC §3.3, §6.2, §7.3, §8.3, §8.4).

Pixels are tokens: an image (channels, H, W) of 8-bit values is a sequence of
channels*H*W tokens over C = 256, in (channel, row, column) order. Training batches are
random images with a random horizontal flip. Evaluation:

* likelihood: the valid bound in bits per dimension (and the published estimator) on
  held-out images, with the shared estimators of ``likelihood.py``;
* samples from the sampler configured in the task (steps, proposal, temperature,
  corrector, time warp, dtype), with NFE, idle-step ratio and the invalid-value rate;
* FID of the samples against the reference set with torch-fidelity's extractor on the
  offline Inception weights (the primary number), FID through clean-fid's resize as a
  cross-check, and KID; N is stated with every value (small-N FID is biased upward).
  Inception Score needs the classifier, which the offline weights lack: reported as
  unavailable rather than computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from prime import SamplerConfig

from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Metric, Task, require_at_least
from ..data.cache import default_cache_dir
from ..data.images import CIFAR10, IMAGENET32, ImageRows, fashion_mnist, image_tokens
from ..fid import (
    CleanFIDFeatures,
    InceptionFeatures,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    reference_features,
)
from ..registry import TASKS
from ..streams import eval_generator, eval_seed
from .likelihood import PER_BLOCK_ARTIFACT, block_nll, nll_metrics, save_per_block

__all__ = ["ImageGeneration"]

SHAPES = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet32": (3, 32, 32)}
# Reference sets for FID (PRIME_SPEC §7.3): CIFAR-10 train, ImageNet-32 validation.
REFERENCE_SPLIT = {"fashion-mnist": "test", "cifar10": "train", "imagenet32": "validation"}
# Held-out images for bits per dimension: never the training split.
HELD_OUT_SPLIT = {"fashion-mnist": "test", "cifar10": "test", "imagenet32": "validation"}


@cache
def load_images(dataset: str, split: str, path: str | None = None) -> np.ndarray:
    """(N, channels, H, W) uint8 images of a dataset split."""
    if dataset == "fashion-mnist":
        return fashion_mnist("train" if split == "train" else "test")
    source = {"cifar10": CIFAR10, "imagenet32": IMAGENET32}[dataset]
    hub_split = {"cifar10": {"validation": "test"}}.get(dataset, {}).get(split, split)
    return image_tokens(replace(source, split=hub_split, path=path or source.path))


@dataclass(frozen=True)
class ImageParams:
    dataset: Literal["fashion-mnist", "cifar10", "imagenet32"] = "cifar10"
    """The images: every 8-bit channel value is a token, C = 256 (PRIME_SPEC §7.3)."""
    path: str | None = None
    """Local parquet copy of the train split in the hub schema (CIFAR-10, ImageNet-32);
    null: the Hugging Face hub."""
    reference_path: str | None = None
    """Local parquet copy of the FID reference split (CIFAR-10 train, ImageNet-32
    validation); null: the hub."""
    held_out_path: str | None = None
    """Local parquet copy of the held-out split of the likelihood (CIFAR-10 test,
    ImageNet-32 validation); null: the hub."""
    hflip: bool = True
    """Flip each training image horizontally with probability 1/2 (the paper's CIFAR-10)."""
    eval_images: int = 1000
    """Held-out images, evenly spaced over the split, whose NLL in bits per dimension is
    estimated."""
    eval_passes: int = 1
    """Monte Carlo passes (stratified time draws) averaged per held-out image."""
    eval_batch: int = 32
    """Images per network call in the likelihood evaluation."""
    sample_count: int = 50_000
    """Generated images for FID, NFE and the idle-step ratio (the paper: 50,000)."""
    sample_batch: int = 100
    """Images generated per sampler call."""
    sample_steps: int = 512
    """N, steps of the sampler's time grid: the NFE of the paper's tables (CIFAR-10: 512,
    ImageNet-32: 1024)."""
    proposal: Literal["token", "subtoken"] = "subtoken"
    """token draws x ~ p(x | y_t) per token and reveals digits of f(x); subtoken draws each
    digit from its marginal sum_{x: f(x)_j = v} p(x | y_t) (PRIME_SPEC §6.2)."""
    sampler_carry_over: bool = True
    """Restrict the sampler's joint distribution to the tokens consistent with the revealed
    digits (PRIME_SPEC §5.2), whatever the model's carry_over (the paper's image models
    train without it)."""
    temperature: tuple[float, float, float] = (0.0, 1.0, 1.0)
    """[a, beta, c] of tau(s) = a s^beta + c, s = 1 - t, dividing the logits; [0, 1, 1]:
    tau = 1 (the paper's CIFAR-10 best: [-0.2, 2, 1])."""
    corrector: tuple[float, float, float] = (0.0, 1.0, 0.0)
    """[a, beta, c] of the remasking strength kappa(s) = a s^beta (1 - s)^beta after each
    step, c ignored as in the released code; a = 0: off (the paper: [16, 2, 0.75])."""
    time_warp: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """[a, beta, c] of the grid warp s -> 1 - a (1 - s)^beta + c of s_k = k / N; [1, 0, 0]:
    the uniform grid down to t = 0 (the paper: [1, 1.7, 0])."""
    sampling_dtype: Literal["float32", "float64"] = "float64"
    """Dtype of the probabilities and the categorical noise; float32 noise truncates the
    Gumbel tail and lowers the effective temperature."""
    reference_count: int = 50_000
    """Images of the reference split (its first ones) in the FID statistics (the paper:
    50,000)."""
    clean_fid: bool = True
    """Also report FID through clean-fid's resize, a cross-check of the primary FID."""

    def __post_init__(self) -> None:
        require_at_least(
            self,
            "task",
            (
                "eval_images",
                "eval_passes",
                "eval_batch",
                "sample_count",
                "sample_batch",
                "sample_steps",
                "reference_count",
            ),
        )
        a, b, c = self.temperature
        if min(c, a + c) <= 0:
            raise ConfigError(f"task.temperature: tau = a s^b + c must stay > 0, got {a, b, c}")


@TASKS.register("image")
class ImageGeneration(Task):
    Params = ImageParams

    @property
    def shape(self) -> tuple[int, int, int]:
        return SHAPES[self.params.dataset]

    def data_spec(self) -> DataSpec:
        c, h, w = self.shape
        return DataSpec(num_classes=256, seq_len=c * h * w, image_shape=self.shape)

    def train_rows(self) -> ImageRows:
        images = load_images(self.params.dataset, "train", self.params.path)
        return ImageRows(images, hflip=self.params.hflip)

    def split_copy(self, split: str) -> str | None:
        """The local copy of ``split`` among ``path`` (train), ``reference_path`` (the FID
        reference split) and ``held_out_path`` (the held-out split), or None (the hub).
        A local file has no split of its own: each field stands for exactly one split."""
        p = self.params
        copies = (
            ("train", p.path),
            (REFERENCE_SPLIT[p.dataset], p.reference_path),
            (HELD_OUT_SPLIT[p.dataset], p.held_out_path),
        )
        # A split two roles share (CIFAR-10's train, ImageNet-32's validation) may be
        # given by either field.
        return next((path for name, path in copies if name == split and path), None)

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        p = self.params
        ref_split, held_split = REFERENCE_SPLIT[p.dataset], HELD_OUT_SPLIT[p.dataset]
        reference = load_images(p.dataset, ref_split, self.split_copy(ref_split))
        held_out = load_images(p.dataset, held_split, self.split_copy(held_split))
        chosen = np.linspace(0, len(held_out) - 1, min(p.eval_images, len(held_out))).astype(int)
        per_image = block_nll(
            model,
            np.asarray(held_out[chosen]).reshape(len(chosen), -1),
            passes=p.eval_passes,
            batch=p.eval_batch,
            seed=eval_seed("image.likelihood", ctx.seed),
            device=ctx.device,
            desc="held-out NLL",
        )
        dims = int(np.prod(self.shape))
        card = {
            "split": f"{p.dataset} held-out",
            "images": len(chosen),
            "ema": ctx.ema,
            "passes": p.eval_passes,
        }
        units = {"published": dims, "valid_bound": dims}
        metrics = nll_metrics("test", per_image, units, card)
        per_image_path = save_per_block(
            ctx.artifact_dir, per_image, units, chosen, eval_seed("image.likelihood", ctx.seed)
        )
        for name in ("published", "valid_bound"):
            nll = next(m for m in metrics if m.name == f"test_nll_{name}")
            metrics.append(Metric(f"test_bpd_{name}", nll.value / math.log(2), nll.card))
        samples, sample_metrics = self._samples(model, ctx)
        metrics += sample_metrics
        metrics += self._fid(samples, np.asarray(reference[: p.reference_count]), ctx)
        path = ctx.artifact_dir / "samples.npz"
        np.savez_compressed(path, images=samples[:64])
        artifacts = [("samples", path), (PER_BLOCK_ARTIFACT[0], per_image_path)]
        return EvalOutput(metrics, artifacts=artifacts)

    def sampler_config(self) -> SamplerConfig:
        """The task's sampler settings. The time warp always applies (its [1, 0, 0] is the
        uniform grid down to t = 0); tau = 1 and kappa = 0 switch those terms off. For
        images carry-over is a sampling-time choice (PRIME_SPEC §5.2)."""
        p = self.params
        return SamplerConfig(
            steps=p.sample_steps,
            proposal=p.proposal,
            carry_over=p.sampler_carry_over,
            temperature=None if p.temperature == (0.0, 1.0, 1.0) else p.temperature,
            corrector=p.corrector if p.corrector[0] > 0 else None,
            time_warp=p.time_warp,
            sampling_dtype=torch.float64 if p.sampling_dtype == "float64" else torch.float32,
        )

    def _samples(self, model: torch.nn.Module, ctx: EvalContext) -> tuple[np.ndarray, list[Metric]]:
        p = self.params
        c, h, w = self.shape
        sampler = self.sampler_config()
        gen = eval_generator("image.samples", ctx.seed, ctx.device)
        images, idle, invalid, nfe = [], [], 0, 0
        for start in tqdm(range(0, p.sample_count, p.sample_batch), desc="sampling", unit="batch"):
            n = min(p.sample_batch, p.sample_count - start)
            result = model.sample(n, c * h * w, sampler, generator=gen)
            invalid += int((result.tokens >= 256).sum())
            idle.append(result.idle_ratio.cpu())
            nfe = result.nfe
            images.append(result.tokens.clamp(max=255).to(torch.uint8).view(n, c, h, w).cpu())
        card = {
            "samples": p.sample_count,
            "steps": p.sample_steps,
            "proposal": p.proposal,
            "carry_over": p.sampler_carry_over,
            "temperature": list(p.temperature),
            "corrector": list(p.corrector),
            "time_warp": list(p.time_warp),
            "sampling_dtype": p.sampling_dtype,
            "ema": ctx.ema,
        }
        metrics = [
            Metric("sample_nfe", float(nfe), card),
            Metric("sample_idle_ratio", float(torch.cat(idle).double().mean()), card),
            Metric("sample_invalid_rate", invalid / (p.sample_count * c * h * w), card),
        ]
        return torch.cat(images).numpy(), metrics

    def _fid(self, samples: np.ndarray, reference: np.ndarray, ctx: EvalContext) -> list[Metric]:
        p = self.params
        cache_dir = default_cache_dir()
        label = f"{p.dataset}-{REFERENCE_SPLIT[p.dataset]}"
        card = {
            "samples": len(samples),
            "reference": f"{label} ({len(reference)} images)",
            "weights": "2015-12-05 FID Inception (offline copy)",
        }
        out = []
        extractors = [("", InceptionFeatures(cache_dir, ctx.device))]
        if p.clean_fid:
            extractors.append(("_cleanfid", CleanFIDFeatures(ctx.device)))
        for suffix, extractor in extractors:
            ref = reference_features(reference, extractor, cache_dir, label=label)
            gen = extractor(samples, desc="sample features")
            fid = frechet_distance(*feature_statistics(gen), *feature_statistics(ref))
            c = {**card, "extractor": extractor.name}
            out.append(Metric(f"fid{suffix}", fid, c))
            if not suffix:
                kid, kid_std = kernel_inception_distance(gen, ref, subsets=100)
                out += [Metric("kid", kid, c), Metric("kid_std", kid_std, c)]
        out.append(
            Metric(
                "inception_score_available",
                0.0,
                {"reason": "the offline weights have no classifier layer"},
            )
        )
        return out
