"""FID along training: the curve by which the authors chose each image row's epoch.

The authors score 2,000 samples every 250 epochs of training (their ``--fid_samples``,
``--eval_frequency``) and early-stop each row at the epoch of the best FID. This task
does the same from the checkpoints an upstream run kept: for every kept periodic
checkpoint (optimizer step n), ``sample_count`` images from its EMA weights with the
upstream row's sampler (or the settings given here), FID against the upstream's
reference statistics or, with ``reference: training_loader``, against one epoch of a
shuffled, flipped loader over the reference split, as the authors' in-training FID
(:mod:`benchmarks.tasks.loader_reference`). Every checkpoint starts the same seeded
sampling stream, so the points differ by their weights, not by their noise.

Metrics: ``fid_curve``, ``fid_curve_se`` (when ``fid_resamples`` > 1) and ``kid_curve``
logged at step n, one point per checkpoint; ``fid_curve_best`` and
``fid_curve_best_step`` (the curve's minimum), ``fid_curve_last`` (the last checkpoint)
and ``fid_curve_points``.

The reference statistics are the images the final FID is measured against, so an epoch
chosen by this curve is chosen on the test metric: the selected number is optimistic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from ..config.run_config import RunConfig
from ..core import ConfigError, EvalContext, EvalOutput, Metric, Task, require_at_least
from ..data.cache import default_cache_dir
from ..evaluation.shards import sharding_of
from ..metrics.fid import InceptionFeatures
from ..metrics.fid_reference import share_references
from ..registry import TASKS
from .image_params import REFERENCE_SPLIT, ImageParams, check_sampler_triples
from .image_splits import load_images
from .images import ImageGeneration
from .loader_reference import loader_reference

__all__ = ["FidCurveParams", "ImageFidCurve"]

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class FidCurveParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("reference", "sample_seeding")

    sample_count: int = 2000
    """Images generated per checkpoint (the authors' --fid_samples: 2,000)."""
    sample_batch: int = 100
    """Images generated per sampler call."""
    sample_seeding: Literal["stream", "per-batch"] = "stream"
    """The sampling noise of each checkpoint's images (the image task's sample_seeding)."""
    fid_resamples: int = 0
    """R > 1: random halves of each point's features whose spread gives its standard
    error (fid_curve_se); 0: none."""
    every: int = 1
    """Score every k-th kept checkpoint (the last one always)."""
    sample_steps: int | None = None
    """Sampler steps N; null: the upstream row's."""
    proposal: Literal["token", "subtoken"] | None = None
    """The solver (subtoken: carry-over, token: no carry-over); null: the upstream row's."""
    temperature: Triple | None = None
    """[a, beta, c] of the temperature; null: the upstream row's."""
    corrector: Triple | None = None
    """[a, beta, c] of the corrector; null: the upstream row's."""
    time_warp: Triple | None = None
    """[a, beta, c] of the time warp; null: the upstream row's."""
    reference: Literal["fid_reference", "training_loader"] = "fid_reference"
    """The real images: fid_reference, the upstream row's FID reference (its first
    reference_count images of the reference split); training_loader, the first
    floor(N / G) G images of a seeded permutation of the whole reference split, each
    flipped with probability 1/2, G the upstream's global batch (the authors' in-training
    FID: one epoch of their loader), cached under a label of their own."""

    def __post_init__(self) -> None:
        require_at_least(self, "task", ("sample_batch", "every"))
        require_at_least(self, "task", ("sample_count",), minimum=2)
        if self.sample_steps is not None:
            require_at_least(self, "task", ("sample_steps",))
        check_sampler_triples(self, () if self.sample_steps is None else (self.sample_steps,))


@TASKS.register("image-fid-curve")
class ImageFidCurve(Task):
    """FID of every checkpoint an upstream image run kept, at one sampler setting."""

    Params = FidCurveParams
    trainable = False
    needs_model = False  # it loads each kept checkpoint itself (EvalContext.load_checkpoint)

    upstream: RunConfig | None = None

    def check_upstream(self, upstream: RunConfig) -> None:
        if not isinstance(upstream.task.params, ImageParams):
            raise ConfigError(
                f"upstream: {upstream.experiment}/{upstream.variant} runs task "
                f"{upstream.task.name!r}, not an image task"
            )
        self.upstream = upstream

    def row_params(self) -> ImageParams:
        """The upstream row's image settings with this curve's sample count and sampler;
        no likelihood, IS, clean-fid or real-data floor (one FID per point)."""
        if self.upstream is None:
            raise ConfigError("image-fid-curve: the runner names no upstream run")
        p = self.params
        sampler = {
            k: getattr(p, k)
            for k in ("sample_steps", "proposal", "temperature", "corrector", "time_warp")
            if getattr(p, k) is not None
        }
        return dataclasses.replace(
            self.upstream.task.params,
            sample_count=p.sample_count,
            sample_batch=p.sample_batch,
            sample_seeding=p.sample_seeding,
            fid_resamples=p.fid_resamples,
            fid_steps=(),
            fid_real_floor=False,
            inception_score=False,
            clean_fid=False,
            **sampler,
        )

    def checkpoints(self, ctx: EvalContext) -> list[tuple[int, Path]]:
        """Every ``every``-th periodic checkpoint of the upstream run and its last one, in
        step order; an error naming the remedy when the run did not keep them all."""
        up = self.upstream
        if up is None or ctx.load_checkpoint is None:
            raise ConfigError("image-fid-curve: the runner names no upstream run")
        kept = dict(ctx.kept_checkpoints)
        period = up.train.checkpoint_every
        missing = [n for n in range(period, up.train.steps + 1, period) if n not in kept]
        if missing or not kept:
            raise ConfigError(
                f"{up.experiment}/{up.variant} (run {ctx.upstream_run}) kept no periodic "
                f"checkpoint at step(s) {', '.join(map(str, missing[:5]))}"
                f"{' ...' if len(missing) > 5 else ''}: train it with "
                "train.keep_checkpoints=true (the setting leaves its run id unchanged)"
            )
        steps = sorted(kept)
        chosen = steps[:: self.params.every]
        if chosen[-1] != steps[-1]:
            chosen.append(steps[-1])
        return [(n, kept[n]) for n in chosen]

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        params = self.row_params()
        row = ImageGeneration(params, self.upstream)
        split = REFERENCE_SPLIT[params.dataset]
        reference = load_images(
            params.dataset, split, row.split_copy(split), params.imagenet_batches
        )
        label = row.reference_label()
        if self.params.reference == "training_loader":
            batch = self.upstream.train.global_batch_size
            reference = loader_reference(reference, batch, ctx.seed)
            label = f"{label}-training-loader"
        else:
            reference = np.asarray(reference[: params.reference_count])
        extractor = InceptionFeatures(
            default_cache_dir(), ctx.device, precision=params.fid_precision
        )
        share_references([(reference, label)], extractor, default_cache_dir())
        metrics: list[Metric] = []
        points: list[tuple[int, float]] = []
        for step, path in self.checkpoints(ctx):
            network, ema = ctx.load_checkpoint(path)
            # Each checkpoint's samples and features are shards of their own.
            sharding = sharding_of(ctx).child(f"step{step}", model=f"{path.name}@{step}")
            point = dataclasses.replace(ctx, ema=ema, sharding=sharding)
            images, _ = row.sample_images(network, point, params.sample_steps)
            scored = row.score_images(images, reference, [("", extractor)], point, label=label)
            scores = {m.name: m for m in scored}
            card = {
                **scores["fid"].card,
                "train_step": step,
                "samples": params.sample_count,
                "steps": params.sample_steps,
                "proposal": params.proposal,
                "temperature": list(params.temperature),
                "corrector": list(params.corrector),
                "time_warp": list(params.time_warp),
                "reference": self.params.reference,
                "selection": "by test-set FID: optimistic",
            }
            for name, curve in (
                ("fid", "fid_curve"),
                ("fid_se", "fid_curve_se"),
                ("kid", "kid_curve"),
            ):
                if name in scores:
                    metrics.append(Metric(curve, scores[name].value, card, step=step))
            points.append((step, scores["fid"].value))
            del network
        best_step, best = min(points, key=lambda p: p[1])
        summary = {"samples": params.sample_count, "selection": "by test-set FID: optimistic"}
        metrics += [
            Metric("fid_curve_best", best, summary),
            Metric("fid_curve_best_step", float(best_step), summary),
            Metric("fid_curve_last", points[-1][1], summary),
            Metric("fid_curve_points", float(len(points)), summary),
        ]
        return EvalOutput(metrics)
