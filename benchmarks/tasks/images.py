"""Image generation: Table 3 and the ell x NFE table (docs/method.md §3.3, §6.2, §7.3, §8.3, §8.4).

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
  With ``inception_score``, the Inception Score of the samples too, from the classifier
  of torch-fidelity's weights file in the same pass (the offline FID weights lack it; a
  run without the file stops before training, saying where to put it);
* optionally the same scores at further sampler step counts (``fid_steps``), and for N
  held-out real images, the floor of FID at this N (``fid_real_floor``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from prime import SamplerConfig

from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Metric, Task
from ..data.cache import default_cache_dir
from ..data.images import ImageRows
from ..evaluation.shards import sharding_of
from ..metrics.fid import CleanFIDFeatures, InceptionFeatures
from ..metrics.fid_reference import share_references
from ..metrics.inception_score import SPLITS, classifier_weights_file
from ..registry import TASKS
from ..safe_files import atomic_write
from ..streams import eval_seed
from .image_params import HELD_OUT_SPLIT, REFERENCE_SPLIT, SHAPES, ImageParams
from .image_sampling import sample_images, sharded_features
from .image_scores import Extractors, image_scores
from .image_splits import load_images
from .likelihood import PER_BLOCK_ARTIFACT, block_nll, nll_metrics, save_per_block

__all__ = ["ImageGeneration"]


@TASKS.register("image")
class ImageGeneration(Task):
    Params = ImageParams

    def __init__(self, params: ImageParams, config: Any):
        super().__init__(params, config)
        self.check_mixture_temper(getattr(config, "model", None))

    def check_mixture_temper(self, model: Any) -> None:
        """ConfigError if ``model`` (a ComponentConfig or None) is no mixture but the task
        tempers mixture components."""
        if self.params.mixture_temper == "components" and model and model.name != "mdm-mixture":
            raise ConfigError(
                f"task.mixture_temper: components tempers each label of an mdm-mixture model; "
                f"model {model.name!r} has one distribution (use mean, the same law)"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return SHAPES[self.params.dataset]

    @classmethod
    def declared_data(cls, params: ImageParams) -> DataSpec:
        shape = SHAPES[params.dataset]
        c, h, w = shape
        return DataSpec(num_classes=256, seq_len=c * h * w, image_shape=shape)

    def data_spec(self) -> DataSpec:
        return self.declared_data(self.params)

    def train_rows(self) -> ImageRows:
        p = self.params
        if p.inception_score:  # fail before training, not after it
            classifier_weights_file(default_cache_dir())
        images = load_images(p.dataset, "train", p.path, p.imagenet_batches)
        return ImageRows(images, hflip=p.hflip, order=p.row_order)

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
        batches = p.imagenet_batches
        reference = load_images(p.dataset, ref_split, self.split_copy(ref_split), batches)
        held_out = load_images(p.dataset, held_split, self.split_copy(held_split), batches)
        chosen = np.linspace(0, len(held_out) - 1, min(p.eval_images, len(held_out))).astype(int)
        per_image = block_nll(
            model,
            np.asarray(held_out[chosen]).reshape(len(chosen), -1),
            passes=p.eval_passes,
            batch=p.eval_batch,
            seed=eval_seed("image.likelihood", ctx.seed),
            device=ctx.device,
            desc="held-out NLL",
            sharding=sharding_of(ctx),
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
        reference = np.asarray(reference[: p.reference_count])
        floor = self.floor_images(held_out, len(reference)) if p.fid_real_floor else None
        primary = InceptionFeatures(
            default_cache_dir(), ctx.device, precision=p.fid_precision, logits=p.inception_score
        )
        extractors: Extractors = [("", primary)]
        if p.clean_fid:
            extractors.append(("_cleanfid", CleanFIDFeatures(ctx.device)))
        # Runs that reach this point together split the real images' features between
        # them rather than each computing all of them.
        label = self.reference_label()
        real = [(reference, label)] + ([(floor, f"{label}-floor")] if floor is not None else [])
        for _, extractor in extractors:
            share_references(real, extractor, default_cache_dir())
        samples, sample_metrics = self.sample_images(model, ctx, p.sample_steps)
        metrics += sample_metrics + self.score_images(samples, reference, extractors, ctx)
        for steps in p.fid_steps:
            more, more_metrics = self.sample_images(model, ctx, steps, f"_steps{steps}")
            metrics += more_metrics
            metrics += self.score_images(more, reference, extractors[:1], ctx, f"_steps{steps}")
        if floor is not None:
            metrics += self.score_images(floor, reference, extractors, ctx, "_real_floor")
        why = "see is_mean, is_std" if p.inception_score else "task.inception_score is false"
        metrics.append(
            Metric("inception_score_available", float(p.inception_score), {"reason": why})
        )
        path = ctx.artifact_dir / "samples.npz"
        if ctx.is_main:
            with atomic_write(path, "samples artifact") as handle:
                np.savez_compressed(handle, images=samples[:64])
        artifacts = [("samples", path), (PER_BLOCK_ARTIFACT[0], per_image_path)]
        return EvalOutput(metrics, artifacts=artifacts)

    def floor_images(self, held_out: np.ndarray, reference_count: int) -> np.ndarray:
        """The sample_count last images of the held-out split, for the real-data floor;
        when that split is also the reference split, they must lie past its first
        reference_count images (the reference statistics)."""
        p = self.params
        n = p.sample_count
        if REFERENCE_SPLIT[p.dataset] == HELD_OUT_SPLIT[p.dataset] and reference_count + n > len(
            held_out
        ):
            raise ConfigError(
                f"task.fid_real_floor: {p.dataset} {HELD_OUT_SPLIT[p.dataset]} has "
                f"{len(held_out)} images, fewer than reference_count + sample_count = "
                f"{reference_count} + {n} (the floor's images must not be in the reference)"
            )
        if n > len(held_out):
            raise ConfigError(
                f"task.fid_real_floor: sample_count {n} exceeds the {len(held_out)} held-out "
                f"images of {p.dataset}"
            )
        return np.asarray(held_out[len(held_out) - n :])

    def sampler_config(self, steps: int | None = None) -> SamplerConfig:
        """The task's sampler settings. The time warp always applies (its [1, 0, 0] is the
        uniform grid down to t = 0); tau = 1 and kappa = 0 switch those terms off. For
        images carry-over is a sampling-time choice (docs/method.md §5.2)."""
        p = self.params
        return SamplerConfig(
            steps=p.sample_steps if steps is None else steps,
            proposal=p.proposal,
            carry_over=p.sampler_carry_over,
            temperature=None if p.temperature == (0.0, 1.0, 1.0) else p.temperature,
            corrector=p.corrector if p.corrector[0] > 0 or p.corrector_on == "always" else None,
            corrector_at_zero=p.corrector_on == "always",
            time_warp=p.time_warp,
            sampling_dtype=torch.float64 if p.sampling_dtype == "float64" else torch.float32,
            temper_components=p.mixture_temper == "components",
        )

    def sample_images(
        self, model: torch.nn.Module, ctx: EvalContext, steps: int, suffix: str = ""
    ) -> tuple[np.ndarray, list[Metric]]:
        """sample_count images at ``steps`` steps and their metrics
        (:func:`benchmarks.tasks.image_sampling.sample_images`)."""
        return sample_images(model, self.params, self.sampler_config(steps), ctx, suffix)

    def reference_label(self) -> str:
        return f"{self.params.dataset}-{REFERENCE_SPLIT[self.params.dataset]}"

    def score_images(
        self,
        images: np.ndarray,
        reference: np.ndarray,
        extractors: Extractors,
        ctx: EvalContext,
        suffix: str = "",
        label: str | None = None,
    ) -> list[Metric]:
        """FID (with its half-sample SE) and KID of ``images`` against ``reference`` (its
        features cached under ``label``; None: the reference split's), for each
        extractor, metric names suffixed ``suffix``."""
        p = self.params
        label = label or self.reference_label()
        card = {"weights": "2015-12-05 FID Inception (offline copy)", "ema": ctx.ema}
        resampling = (p.fid_resamples, eval_seed("image.fid_resampling", ctx.seed))
        if suffix == "_real_floor":
            card["images"] = f"{p.dataset} {HELD_OUT_SPLIT[p.dataset]}, last {len(images)}"
        floor = suffix == "_real_floor"
        # The real floor's features are cached without logits: no IS for it.
        splits = SPLITS if p.inception_score and not floor else 0
        features = None
        if not floor:
            features = {
                name: sharded_features(
                    extractor,
                    images,
                    sharding_of(ctx),
                    f"features{name}{suffix}",
                    logits=bool(splits) and not name,
                    desc=f"sample features{suffix}",
                )
                for name, extractor in extractors
            }
        return image_scores(
            images,
            reference,
            extractors,
            default_cache_dir(),
            label,
            card,
            suffix,
            cached_images=floor,
            resampling=resampling,
            inception_score_splits=splits,
            features=features,
        )
