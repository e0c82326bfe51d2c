"""Settings of the image task (docs/method.md §7.3, §8.3): the dataset and its splits, the
held-out likelihood, the sampler, and the FID protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from prime import corrector_schedule, temperature_schedule, warped_grid

from ..config.precision import FASTEST, fastest_network_precision
from ..core import ConfigError, require_at_least
from ..data.row_order import RowOrder

__all__ = ["HELD_OUT_SPLIT", "REFERENCE_SPLIT", "SHAPES", "ImageParams", "check_sampler_triples"]

SHAPES = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet32": (3, 32, 32)}
# Reference sets for FID (docs/method.md §7.3): CIFAR-10 train, ImageNet-32 validation.
REFERENCE_SPLIT = {"fashion-mnist": "test", "cifar10": "train", "imagenet32": "validation"}
# Held-out images for bits per dimension: never the training split.
HELD_OUT_SPLIT = {"fashion-mnist": "test", "cifar10": "test", "imagenet32": "validation"}
# Images of each held-out split, so that the real-data floor is checked before training.
HELD_OUT_SIZE = {"fashion-mnist": 10_000, "cifar10": 10_000, "imagenet32": 50_000}


@dataclass(frozen=True)
class ImageParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "fid_steps",
        "fid_real_floor",
        "fid_resamples",
        "fid_precision",
        "sample_precision",
        "inception_score",
        "imagenet_batches",
        "mixture_temper",
        "row_order",
        "invalid_pixels",
        "corrector_on",
        "sample_seeding",
    )

    dataset: Literal["fashion-mnist", "cifar10", "imagenet32"] = "cifar10"
    """The images: every 8-bit channel value is a token, C = 256 (docs/method.md §7.3)."""
    path: str | None = None
    """Local parquet copy of the train split in the hub schema (CIFAR-10, ImageNet-32);
    null: the Hugging Face hub. The hub's ImageNet-32 is a community 32 x 32 copy of
    ImageNet-1k whose resize filter is not stated, not the paper's (imagenet_batches)."""
    reference_path: str | None = None
    """Local parquet copy of the FID reference split (CIFAR-10 train, ImageNet-32
    validation); null: the hub."""
    held_out_path: str | None = None
    """Local parquet copy of the held-out split of the likelihood (CIFAR-10 test,
    ImageNet-32 validation); null: the hub."""
    imagenet_batches: str | None = None
    """Directory of the downsampled-ImageNet pickles the paper's ImageNet-32 comes from
    (box-resized; train/train_data_batch_1..10 for training, val/val_data for the FID
    reference and the held-out likelihood; :mod:`benchmarks.data.imagenet_batches`),
    in place of path, reference_path and held_out_path; null: those or the hub."""
    hflip: bool = True
    """Flip each training image horizontally with probability 1/2 (the paper's CIFAR-10)."""
    row_order: RowOrder = "replacement"
    """How a training step takes its images: replacement, drawn uniformly per step; or
    epoch_permutation, the next images of per-epoch permutations of the N images
    (:mod:`benchmarks.data.row_order`; the authors' shuffled loader)."""
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
    sample_seeding: Literal["stream", "per-batch"] = "stream"
    """The sampling noise: per-batch, call j draws from a generator seeded by j alone, so
    the calls are split over the job's ranks (with equal numbers on any number of them);
    stream, one generator through all calls, drawn by the main rank alone (resumable,
    not split): the suite's runs made before per-batch seeds."""
    invalid_pixels: Literal["clamp", "wrap"] = "clamp"
    """What a sampled value v >= 256 (a code past 255 when b^ell > 256, as ell = 3's 343)
    becomes as a pixel: clamp, 255; wrap, v mod 256 (the authors' uint8 cast). The rate
    of such values is reported either way (sample_invalid_rate)."""
    sample_steps: int = 512
    """N, steps of the sampler's time grid: the NFE of the paper's tables (CIFAR-10: 512,
    ImageNet-32: 1024)."""
    proposal: Literal["token", "subtoken"] = "subtoken"
    """token draws x ~ p(x | y_t) per token and reveals digits of f(x); subtoken draws each
    digit from its marginal sum_{x: f(x)_j = v} p(x | y_t) (docs/method.md §6.2)."""
    sampler_carry_over: bool = True
    """Restrict the sampler's joint distribution to the tokens consistent with the revealed
    digits (docs/method.md §5.2), whatever the model's carry_over (the paper's image models
    train without it)."""
    temperature: tuple[float, float, float] = (0.0, 1.0, 1.0)
    """[a, beta, c] of tau(s) = a s^beta + c, s = 1 - t, dividing the logits; [0, 1, 1]:
    tau = 1 (the paper's CIFAR-10 best: [-0.2, 2, 1])."""
    mixture_temper: Literal["mean", "components"] = "mean"
    """Where tau acts on an mdm-mixture model: mean tempers the averaged mixture,
    p = (mean_k p_k)^(1/tau) renormalised; components averages the K labels'
    softmax(logits_k / tau) (the authors' solver). The same law at tau = 1; only for
    mdm-mixture (one network has one component: mean)."""
    corrector: tuple[float, float, float] = (0.0, 1.0, 0.0)
    """[a, beta, c] of the remasking strength kappa(s) = a s^beta (1 - s)^beta after each
    step, c ignored as in the released code; a = 0: off unless corrector_on is always
    (the paper: [16, 2, 0.75])."""
    corrector_on: Literal["auto", "always"] = "auto"
    """auto: the corrector step runs where kappa > 0 (a = 0: no corrector); always: it
    runs after every step but the last whatever kappa, so at a = 0 its predictor term
    alpha' / (1 - alpha) still moves a sub-token to a fresh proposal
    (:mod:`prime.sampling.corrector`; the authors' solver with --use_corrector_step)."""
    time_warp: tuple[float, float, float] = (1.0, 0.0, 0.0)
    """[a, beta, c] of the grid warp s -> 1 - a (1 - s)^beta + c of s_k = k / N; [1, 0, 0]:
    the uniform grid down to t = 0 (the paper: [1, 1.7, 0])."""
    sample_precision: Literal["fastest", "float32", "bfloat16"] = "float32"
    """Precision of the network's calls while sampling: bfloat16 runs them under autocast
    (faster only where the machine computes bfloat16 natively); the probabilities and the
    noise stay in sampling_dtype. fastest: bfloat16 there, else float32, chosen before the
    run id is computed (:mod:`benchmarks.config.precision`)."""
    sampling_dtype: Literal["float32", "float64"] = "float64"
    """Dtype of the probabilities and the categorical noise; float32 noise truncates the
    Gumbel tail and lowers the effective temperature."""
    reference_count: int = 50_000
    """Images of the reference split (its first ones) in the FID statistics (the paper:
    50,000)."""
    clean_fid: bool = True
    """Also report FID through clean-fid's resize, a cross-check of the primary FID."""
    fid_steps: tuple[int, ...] = ()
    """Further step counts N of the sampler, beside sample_steps: at each, sample_count
    fresh samples (from the same seeded stream) are scored with FID, KID, NFE and the
    invalid-value rate, metrics suffixed _steps{N}, for comparisons at equal NFE across
    several NFE. Empty: sample_steps only."""
    fid_real_floor: bool = False
    """Also score sample_count real held-out images (the held-out split's last ones, in
    neither the reference statistics nor the training set) against the same reference:
    the floor of FID at this N, metrics suffixed _real_floor."""
    fid_precision: Literal["fastest", "float32", "bfloat16"] = "float32"
    """Precision of the primary FID's Inception network: bfloat16 runs it under autocast
    (faster only where the machine computes bfloat16 natively; 400 Fashion-MNIST test
    against 400 train images: FID 43.84 against float32's 43.91) and is cached and
    labelled apart; the paper's numbers are float32. fastest: as for sample_precision."""
    fid_resamples: int = 0
    """R: random halves of the sample features whose spread of FID gives the standard
    error of the primary FID at N (fid_se: the noise of the N samples, not of training);
    0: none."""
    inception_score: bool = False
    """Also report the Inception Score of the samples (is_mean, is_std over 10 splits, as
    torch-fidelity defines it), from the classifier of the same Inception pass as the
    FID features. It needs torch-fidelity's weights file, which the suite never
    downloads: a run without it stops before training, saying where to put it."""

    def __post_init__(self) -> None:
        for name in ("sample_precision", "fid_precision"):
            if getattr(self, name) == FASTEST:
                object.__setattr__(self, name, fastest_network_precision())
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
        require_at_least(self, "task", ("fid_resamples",), minimum=0)
        if any(n < 1 for n in self.fid_steps) or len(set(self.fid_steps)) < len(self.fid_steps):
            raise ConfigError(f"task.fid_steps: distinct step counts >= 1, got {self.fid_steps}")
        if self.sample_steps in self.fid_steps:
            raise ConfigError(
                f"task.fid_steps: {self.sample_steps} is sample_steps, which is always scored"
            )
        if self.fid_real_floor:
            # The floor's images lie past the reference's when the two share a split.
            shared = REFERENCE_SPLIT[self.dataset] == HELD_OUT_SPLIT[self.dataset]
            needed = self.sample_count + (self.reference_count if shared else 0)
            if needed > HELD_OUT_SIZE[self.dataset]:
                raise ConfigError(
                    f"task.fid_real_floor: {self.dataset} {HELD_OUT_SPLIT[self.dataset]} has "
                    f"{HELD_OUT_SIZE[self.dataset]} images, fewer than the {needed} the floor "
                    f"needs (sample_count{' + reference_count' if shared else ''})"
                )
        if self.imagenet_batches is not None:
            if self.dataset != "imagenet32":
                raise ConfigError(
                    f"task.imagenet_batches: the ImageNet-32 pickles, not for {self.dataset}"
                )
            given = [n for n in ("path", "reference_path", "held_out_path") if getattr(self, n)]
            if given:
                raise ConfigError(
                    f"task.imagenet_batches: every split comes from the pickles; drop "
                    f"task.{', task.'.join(given)}"
                )
        a, b, c = self.temperature
        if b < 0 or min(a * 0.0**b + c, a + c) <= 0:  # tau at s = 0 and s = 1 (0^0 = 1: [1, 0, 0])
            raise ConfigError(f"task.temperature: tau = a s^b + c must stay > 0, got {a, b, c}")
        check_sampler_triples(self, (self.sample_steps, *self.fid_steps))


def check_sampler_triples(params: Any, steps: tuple[int, ...]) -> None:
    """ConfigError naming ``task.temperature``, ``task.corrector`` or ``task.time_warp``
    (each checked unless null) where the sampler would refuse it, the time warp at each
    number of steps N in ``steps``: at validation rather than after training."""
    makers = {"temperature": temperature_schedule, "corrector": corrector_schedule}
    for name, make in makers.items():
        triple = getattr(params, name)
        if triple is not None:
            try:
                make(*triple)
            except ValueError as err:
                raise ConfigError(f"task.{name}: {err}") from None
    warp = params.time_warp
    for n in steps if warp is not None else ():
        try:
            warped_grid(n, *warp)
        except ValueError as err:
            raise ConfigError(f"task.time_warp: {err} at N = {n} steps") from None
