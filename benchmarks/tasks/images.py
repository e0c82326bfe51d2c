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
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from prime import corrector_schedule, temperature_schedule, warped_grid

from ..config import ConfigError, require_at_least
from ..data.images import CIFAR10, IMAGENET32, ImageRows, fashion_mnist, image_tokens
from ..data.text import default_cache_dir
from ..fid import (
    CleanFIDFeatures,
    InceptionFeatures,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    reference_features,
)
from ..registry import TASKS
from ..report import ReportContext, run_value
from ..tracking import Metric
from .base import DataSpec, EvalContext, EvalOutput, Task
from .likelihood import block_nll, nll_metrics

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
    path: str | None = None  # local parquet copy (train split) in the hub schema
    reference_path: str | None = None  # local parquet copy of the FID reference split
    held_out_path: str | None = None  # local parquet copy of the held-out (likelihood) split
    hflip: bool = True
    eval_images: int = 1000
    eval_passes: int = 1
    eval_batch: int = 32
    sample_count: int = 50_000
    sample_batch: int = 100
    sample_steps: int = 512
    proposal: Literal["token", "subtoken"] = "subtoken"
    sampler_carry_over: bool = True
    temperature: tuple[float, float, float] = (0.0, 1.0, 1.0)  # tau(s) = a s^b + c
    corrector: tuple[float, float, float] = (0.0, 1.0, 0.0)  # kappa(s) = a s^b (1-s)^b
    time_warp: tuple[float, float, float] = (1.0, 0.0, 0.0)  # [1, 0, 0] = off
    sampling_dtype: Literal["float32", "float64"] = "float64"
    reference_count: int = 50_000
    clean_fid: bool = True

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
    report_title = "Image generation (Table 3)"

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
            seed=80_000 + ctx.seed,
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
        metrics = nll_metrics("test", per_image, {"published": dims, "valid_bound": dims}, card)
        for name in ("published", "valid_bound"):
            nll = next(m for m in metrics if m.name == f"test_nll_{name}")
            metrics.append(Metric(f"test_bpd_{name}", nll.value / math.log(2), nll.card))
        samples, sample_metrics = self._samples(model, ctx)
        metrics += sample_metrics
        metrics += self._fid(samples, np.asarray(reference[: p.reference_count]), ctx)
        path = ctx.artifact_dir / "samples.npz"
        np.savez_compressed(path, images=samples[:64])
        return EvalOutput(metrics, artifacts=[("samples", path)])

    def _samples(self, model: torch.nn.Module, ctx: EvalContext) -> tuple[np.ndarray, list[Metric]]:
        p = self.params
        c, h, w = self.shape
        grid = warped_grid(p.sample_steps, *p.time_warp)
        tau = temperature_schedule(*p.temperature) if p.temperature != (0.0, 1.0, 1.0) else None
        kappa = corrector_schedule(*p.corrector) if p.corrector[0] > 0 else None
        dtype = torch.float64 if p.sampling_dtype == "float64" else torch.float32
        gen = torch.Generator(device=ctx.device).manual_seed(90_000 + ctx.seed)
        images, idle, invalid, nfe = [], [], 0, 0
        for start in tqdm(range(0, p.sample_count, p.sample_batch), desc="sampling", unit="batch"):
            n = min(p.sample_batch, p.sample_count - start)
            # For images carry-over is a sampling-time choice (PRIME_SPEC §5.2).
            result = model.sample(
                n,
                c * h * w,
                p.sample_steps,
                grid=grid,
                proposal=p.proposal,
                carry_over=p.sampler_carry_over,
                temperature=tau,
                corrector=kappa,
                sampling_dtype=dtype,
                generator=gen,
            )
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

    @classmethod
    def report(cls, ctx: ReportContext) -> None:
        rows, grids = [], []
        paper = ctx.paper("table3_images")
        for _, run in ctx.runs.sort_values("tags.primebench.variant").iterrows():
            m = {k[len("metrics.") :]: v for k, v in run.items() if k.startswith("metrics.")}
            dataset = run["params.task.dataset"]
            n_samples = int(float(run["params.task.sample_count"]))
            ell = int(run_value(run, "params.model.ell", 1))
            mixture = run["tags.primebench.model"] == "mdm-mixture"
            name = "MDM-Mixture" if mixture else "MDM" if ell == 1 else f"MDM-Prime (l={ell})"
            match = paper[(paper["dataset"] == dataset) & (paper["model"] == name)]
            rows.append(
                {
                    "variant": run["tags.primebench.variant"],
                    "dataset": dataset,
                    "ell": ell,
                    "NFE": int(m.get("sample_nfe", 0)),
                    "paper FID (50k)": (f"{match['fid'].iloc[0]:.2f}" if len(match) else "-"),
                    f"FID torch-fidelity (N={n_samples})": f"{m['fid']:.2f}",
                    "FID clean-fid": f"{m['fid_cleanfid']:.2f}" if "fid_cleanfid" in m else "-",
                    "KID x 1e3": f"{1e3 * m['kid']:.2f} ± {1e3 * m['kid_std']:.2f}",
                    "IS": "unavailable offline",
                    "BPD (valid bound)": f"{m['test_bpd_valid_bound']:.3f}",
                    "invalid values": f"{100 * m.get('sample_invalid_rate', 0):.2f}%",
                }
            )
            grids.append((run["tags.primebench.variant"], run["run_id"]))
        if not rows:
            return
        ctx.write_table(
            pd.DataFrame(rows),
            "table3_images",
            "Image generation (Table 3)",
            notes=[
                "FID and KID from the samples against the reference set (CIFAR-10 train, "
                "ImageNet-32 validation, Fashion-MNIST test); N samples as stated. Small-N FID is "
                "biased upward: compare models at equal N, and read KID (unbiased) beside it.",
                "torch-fidelity's extractor is the primary FID; clean-fid's resize is a "
                "cross-check (different resize filter, so slightly different values).",
            ],
        )
        cls._grid_figure(ctx, grids)

    @staticmethod
    def _grid_figure(ctx: ReportContext, grids: list[tuple[str, str]]) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 3.4))
        for ax, (variant, run_id) in zip(np.atleast_1d(axes), grids, strict=True):
            images = np.load(Path(ctx.download(run_id, "samples/samples.npz")))["images"][:36]
            n, c, h, w = images.shape
            side = int(math.ceil(math.sqrt(n)))
            canvas = np.zeros((c, side * h, side * w), dtype=np.uint8)
            for i, im in enumerate(images):
                r, q = divmod(i, side)
                canvas[:, r * h : (r + 1) * h, q * w : (q + 1) * w] = im
            ax.imshow(
                canvas[0] if c == 1 else canvas.transpose(1, 2, 0), cmap="gray" if c == 1 else None
            )
            ax.set_title(variant, fontsize=9)
            ax.axis("off")
        ctx.save_figure(fig, "image_samples")


@dataclass(frozen=True)
class CheckpointEvalParams(ImageParams):
    train_experiment: str = "ell-sweep"
    train_variant: str = ""
    train_overrides: tuple[str, ...] = ()


@TASKS.register("image-checkpoint")
class ImageCheckpointEval(ImageGeneration):
    """Sampling metrics of a trained image model at another sampler setting (the ell x NFE
    table): loads the last checkpoint of ``train_variant`` of ``train_experiment``."""

    Params = CheckpointEvalParams
    trainable = False
    needs_model = False
    report_title = "FID across ell and NFE (Table 4)"

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        from ..config import load_experiment, parse_overrides
        from ..runner import load_trained_model

        p = self.params
        (trained,) = load_experiment(p.train_experiment).resolve(
            self.config.scale, parse_overrides(list(p.train_overrides)), [p.train_variant]
        )
        if trained.task.params.dataset != p.dataset:
            raise ConfigError(
                f"task.dataset: {p.dataset!r} differs from the trained model's "
                f"{trained.task.params.dataset!r} ({p.train_experiment}/{p.train_variant})"
            )
        model, ema = load_trained_model(trained, ctx.runs_dir, ctx.device)
        return super().evaluate(model, replace(ctx, ema=ema))

    @classmethod
    def report(cls, ctx: ReportContext) -> None:
        paper = ctx.paper("table4_ell_nfe_fid")
        rows = []
        for _, run in ctx.runs.iterrows():
            trained_variant = run["params.task.train_variant"]
            ell = next(
                (
                    int(part[1:])
                    for part in trained_variant.split("-")
                    if part[:1] == "l" and part[1:].isdigit()
                ),
                1,
            )
            rows.append(
                {
                    "dataset": run["params.task.dataset"],
                    "ell": ell,
                    "NFE": int(float(run["params.task.sample_steps"])),
                    "fid": float(run["metrics.fid"]),
                    "samples": int(float(run["params.task.sample_count"])),
                }
            )
        if not rows:
            return
        ours = pd.DataFrame(rows)
        paper = paper[paper["ell"].astype(str).str.isdigit()].assign(
            ell=lambda d: d["ell"].astype(int)
        )
        merged = ours.merge(
            paper[["dataset", "ell", "nfe", "fid"]].rename(columns={"nfe": "NFE", "fid": "paper"}),
            on=["dataset", "ell", "NFE"],
            how="left",
        )
        merged["cell"] = [
            f"{f:.2f} (paper {pf:.2f})" if not math.isnan(pf) else f"{f:.2f} (paper -)"
            for f, pf in zip(merged["fid"], merged["paper"], strict=True)
        ]
        table = merged.pivot_table(
            index=["dataset", "ell"], columns="NFE", values="cell", aggfunc="first"
        ).reset_index()
        table.columns = [
            f"NFE {c}" if isinstance(c, int | np.integer) else c for c in table.columns
        ]
        ctx.write_table(
            table,
            "table4_ell_nfe",
            "FID across ell and NFE (Table 4)",
            notes=[
                f"FID (torch-fidelity) of {int(ours['samples'].iloc[0])} samples per cell; "
                "the paper's values use 50,000 samples and per-row tuned sampler settings.",
            ],
        )
