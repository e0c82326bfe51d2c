"""The 2-D toy (Figure 4): a photo as a pmf over pixel coordinates (docs/method.md §7.4).

Target: scikit-image's ``data.chelsea()`` (Chelsea the cat, a 300 x 451 RGB photo bundled
in the scikit-image wheel), converted to grayscale, resized to R x R (R = 512) and
normalised: p(row, col) proportional to the pixel intensity. A sample is the pair
(row, col): L = 2 tokens over C = R classes. The entropy of the target is exact.

Evaluation of a trained model, in nats per sample (both coordinates):
* the published estimator and the valid marginal bound, averaged over ``eval_passes``
  stratified time draws for each of ``eval_samples`` target samples, with standard errors
  over samples; they are compared with the exact entropy (a valid bound cannot be below);
* ``sample_count`` samples from the reverse sampler: the invalid-sample rate (a code >= C
  in either coordinate), the total-variation distance of the sample histogram from the
  target on a coarse grid, and the same distance for as many exact draws from the target
  (the floor set by the finite sample size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import numpy as np
import torch

from prime import SamplerConfig

from ..config.validation import within
from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Metric, Task, require_at_least
from ..data.loader import GridRows
from ..registry import TASKS
from ..safe_files import atomic_write
from ..streams import eval_generator, eval_seed
from .likelihood import ESTIMATORS, PER_BLOCK_ARTIFACT, block_nll, save_per_block
from .toy2d_sampling import coordinate_histogram, sample_counts, steps_sweep, total_variation

__all__ = ["Toy2D", "target_pmf", "TARGET_SOURCE"]

TARGET_SOURCE = (
    "scikit-image data.chelsea() (Chelsea the cat, 300x451 RGB, bundled in the wheel), "
    "grayscale, resized to {r}x{r}, p(row, col) proportional to intensity^{gamma}"
)


@cache
def target_pmf(image: str = "chelsea", resolution: int = 512, gamma: float = 1.0) -> torch.Tensor:
    """(R, R) float64 pmf over pixel coordinates, p proportional to intensity**gamma.

    The photo is bright almost everywhere (its intensity pmf has entropy within 0.05 nats
    of uniform); gamma > 1 concentrates the mass on the bright fur so that the target has
    structure a model must learn.
    """
    from skimage import color, data, transform

    if image != "chelsea":
        raise ConfigError(f"task.image: expected 'chelsea', got {image!r}")
    gray = color.rgb2gray(data.chelsea())
    resized = transform.resize(gray, (resolution, resolution), anti_aliasing=True)
    pmf = torch.from_numpy(np.clip(resized, 0.0, None)).double() ** gamma
    return pmf / pmf.sum()


def entropy_nats(pmf: torch.Tensor) -> float:
    p = pmf[pmf > 0]
    return float(-(p * p.log()).sum())


def _se(values: torch.Tensor) -> float:
    return float(values.std()) / math.sqrt(values.numel())


@dataclass(frozen=True)
class Toy2DParams:
    image: Literal["chelsea"] = "chelsea"
    """The photo of the target: scikit-image's data.chelsea() (the paper used another cat)."""
    resolution: int = 512
    """R: the photo is resized to R x R, so each coordinate has C = R classes (the paper: 512)."""
    gamma: float = field(
        default=4.0,
        metadata=within(
            -100,
            100,
            why="the photo's intensities lie in [0.015, 0.76], and |gamma| <= 100 keeps "
            "each one's power within float64; at -170 the darkest overflow, the pmf is NaN",
        ),
    )
    """p(row, col) proportional to intensity^gamma; at 1 (the photo itself) the pmf is near
    uniform, a larger gamma concentrates it on the bright fur."""
    eval_samples: int = 4096
    """Fixed draws from the target at which both estimators and the exact NLL are compared."""
    eval_passes: int = 8
    """Monte Carlo passes (stratified time draws) averaged per evaluation sample."""
    eval_batch: int = 4096
    """Samples per network call in the likelihood evaluation."""
    sample_count: int = 20000
    """Samples from the reverse sampler for the histogram, TV distance and invalid rate
    (the paper: 500,000)."""
    sample_steps: int = 128
    """T, steps of the sampler's uniform time grid (the paper: 128)."""
    sample_batch: int = 5000
    """Samples drawn per sampler call."""
    sample_eps: float = field(default=1e-3, metadata=within(0, 1, high_open=True))
    """Last time of the sampler's grid, t_T = eps (the paper's toy: 1e-3)."""
    sampling_dtype: Literal["float32", "float64"] = "float64"
    """Dtype of the probabilities and the categorical noise; float32 noise truncates the
    Gumbel tail and lowers the effective temperature."""
    tv_bins: int = 64
    """The TV distance pools the R x R histograms into tv_bins x tv_bins cells; must divide
    resolution."""
    sweep_steps: tuple[int, ...] = ()
    """Numbers of sampling steps T at which the TV distance and the invalid-sample rate are
    measured again (few steps reveal several digits of a coordinate at once); empty: no
    sweep."""
    sweep_replicates: int = 4
    """Independent sample sets per T of the sweep: the standard errors are between sets."""
    sweep_samples: int = 10000
    """Samples in each set of the sweep."""

    def __post_init__(self) -> None:
        require_at_least(self, "task", ("resolution",), minimum=2)  # C = R, and a codec needs 2
        require_at_least(
            self,
            "task",
            (
                "eval_samples",
                "eval_passes",
                "eval_batch",
                "sample_count",
                "sample_steps",
                "sample_batch",
                "tv_bins",
                "sweep_replicates",
                "sweep_samples",
            ),
        )
        if any(not isinstance(t, int) or t < 1 for t in self.sweep_steps):
            raise ConfigError(
                f"task.sweep_steps: expected positive integers, got {list(self.sweep_steps)}"
            )
        if self.resolution % self.tv_bins:
            raise ConfigError(
                f"task.tv_bins: must divide task.resolution={self.resolution}, got {self.tv_bins}"
            )


@TASKS.register("toy2d")
class Toy2D(Task):
    Params = Toy2DParams

    @property
    def pmf(self) -> torch.Tensor:
        return target_pmf(self.params.image, self.params.resolution, self.params.gamma)

    @classmethod
    def declared_data(cls, params: Toy2DParams) -> DataSpec:
        return DataSpec(num_classes=params.resolution, seq_len=2)

    def data_spec(self) -> DataSpec:
        return self.declared_data(self.params)

    def draw(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """(batch_size, 2) exact draws from the target pmf."""
        flat = torch.multinomial(
            self.pmf.flatten(), batch_size, replacement=True, generator=generator
        )
        return GridRows(self.pmf).get(flat.numpy(), flat.numpy())

    def train_rows(self) -> GridRows:
        return GridRows(self.pmf)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        assert model is not None
        p = self.params
        entropy = entropy_nats(self.pmf)
        metrics = [
            Metric(
                "entropy",
                entropy,
                {
                    "estimator": "exact",
                    "source": TARGET_SOURCE.format(r=p.resolution, gamma=p.gamma),
                },
            )
        ]
        bound_metrics, per_sample = self._bounds(model, ctx)
        sample_metrics, artifact = self._samples(model, ctx)
        artifacts = [("samples", artifact), (PER_BLOCK_ARTIFACT[0], per_sample)]
        return EvalOutput(metrics=metrics + bound_metrics + sample_metrics, artifacts=artifacts)

    def _bounds(self, model: torch.nn.Module, ctx: EvalContext) -> tuple[list[Metric], object]:
        p = self.params
        data_gen = eval_generator("toy.eval_set", ctx.seed)  # fixed evaluation set
        x0 = self.draw(p.eval_samples, data_gen)
        exact_nll = -self.pmf[x0[:, 0], x0[:, 1]].log().to(ctx.device)
        # Stratified times over the whole evaluation set, one per sample and pass.
        seed = eval_seed("toy.likelihood", ctx.seed)
        per_sample = block_nll(
            model,
            x0.numpy(),
            passes=p.eval_passes,
            batch=p.eval_batch,
            seed=seed,
            device=ctx.device,
            desc="likelihood",
        )
        card = {
            "samples": p.eval_samples,
            "passes": p.eval_passes,
            "time_eps": model.time_eps,
            "ema": ctx.ema,
            "split": "fixed draws from the target pmf",
            "dtype": "float64 accumulation",
            "unit": "nats per sample (2 coordinates)",
        }
        out = [
            Metric("exact_nll", float(exact_nll.mean()), {**card, "estimator": "exact -log p(x0)"})
        ]
        for estimator in ("published", "valid_bound"):
            name, values = f"nll_{estimator}", per_sample[estimator].to(exact_nll.device)
            # The exact NLL of every evaluation sample is known, so the gap to it is
            # estimated from paired differences, with a much smaller standard error.
            gap = values - exact_nll
            c = {**card, "estimator": ESTIMATORS[estimator]}
            out += [
                Metric(name, float(values.mean()), c),
                Metric(f"{name}_se", _se(values), c),
                Metric(f"{name}_gap", float(gap.mean()), {**c, "minus": "exact -log p(x0)"}),
                Metric(f"{name}_gap_se", _se(gap), {**c, "minus": "exact -log p(x0)"}),
            ]
        flat = x0[:, 0] * p.resolution + x0[:, 1]  # which target points were evaluated
        path = save_per_block(
            ctx.artifact_dir, per_sample, dict.fromkeys(per_sample, 1), flat, seed
        )
        return out, path

    def _samples(self, model: torch.nn.Module, ctx: EvalContext) -> tuple[list[Metric], object]:
        p = self.params
        r = p.resolution
        gen = eval_generator("toy.samples", ctx.seed, ctx.device)
        dtype = torch.float64 if p.sampling_dtype == "float64" else torch.float32
        sampler = SamplerConfig(steps=p.sample_steps, eps=p.sample_eps, sampling_dtype=dtype)
        got = sample_counts(model, p.sample_count, p.sample_batch, sampler, gen, r)
        grid, nfe = got.grid, got.nfe
        invalid_samples, invalid_tokens = got.invalid_samples, got.invalid_tokens
        reference_gen = eval_generator("toy.exact_draws", ctx.seed)
        exact = self.draw(int(grid.sum()), reference_gen)
        exact_counts = coordinate_histogram(exact, r)
        card = {
            "samples": p.sample_count,
            "steps": p.sample_steps,
            "sampling_dtype": p.sampling_dtype,
            "eps": p.sample_eps,
            "ema": ctx.ema,
            "tv_bins": p.tv_bins,
        }
        metrics = [
            Metric("invalid_sample_rate", invalid_samples / p.sample_count, card),
            Metric("invalid_token_rate", invalid_tokens / (2 * p.sample_count), card),
            Metric("sample_tv", total_variation(self.pmf, grid, p.tv_bins), card),
            Metric(
                "sample_tv_exact_draws",
                total_variation(self.pmf, exact_counts, p.tv_bins),
                {**card, "estimator": "as many exact draws from the target"},
            ),
            Metric("nfe", float(nfe), card),
        ]
        if p.sweep_steps:
            sweep_gen = eval_generator("toy.steps_sweep", ctx.seed, ctx.device)
            exact_gen = eval_generator("toy.steps_sweep_exact", ctx.seed)
            metrics += steps_sweep(
                model,
                self.pmf,
                tuple(p.sweep_steps),
                p.sweep_replicates,
                p.sweep_samples,
                p.sample_batch,
                sampler,
                sweep_gen,
                lambda n: self.draw(n, exact_gen),
                p.tv_bins,
            )
        path = ctx.artifact_dir / "samples_histogram.npz"
        with atomic_write(path, "samples artifact") as handle:
            np.savez_compressed(handle, counts=grid.numpy().astype(np.int32))
        return metrics, path
