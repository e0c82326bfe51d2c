"""The ``prime`` entry: MDM-Prime, ell sub-tokens per token with a joint (carry-over on or
off) or independent decoder; at ell = 1 it is MDM / MDLM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from prime import MaskedDiffusion, SubTokenizer, masking_problem

from ..core import ConfigError, DataSpec, ModelEntry
from ..registry import MODELS
from .backbone_params import BackboneParams, ToyMLPParams, build_backbone
from .diffusion_settings import (
    TIME_EPS_RANGE,
    MaskingName,
    ScheduleName,
    check_ell,
    check_train_time_eps,
)

__all__ = ["PrimeParams", "Prime"]


@dataclass(frozen=True)
class PrimeParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("masking", "train_time_eps")

    ell: int = 2
    """Sub-tokens per token: ell base-b digits, b the smallest integer with b^ell >= C
    (docs/method.md §2); 1: MDM / MDLM, the whole token is one sub-token."""
    decoder: Literal["joint", "independent"] = "joint"
    """p_theta(x_0^i | y_t): joint is one softmax over the C tokens (the paper's); independent
    is a product of ell softmaxes over b digits (docs/method.md §5.3; can yield codes >= C)."""
    carry_over: bool = True
    """Keep revealed digits fixed: the joint softmax covers only the tokens consistent with
    them (docs/method.md §5.2), revealed independent digits are one-hot. Used in training,
    evaluation and (unless the task overrides it) sampling."""
    objective: Literal["published", "valid", "cross_entropy"] = "published"
    """Training loss: published is w(t) (-log p(x_0^i | y_t)), not a bound for ell > 1
    (docs/method.md §3.3); valid is the marginal bound (§3.4); cross_entropy is the unweighted
    -log p(x_0^i | y_t) at every token (the image models). Evaluation reports both estimators."""
    schedule: ScheduleName = "loglinear"
    """alpha_t, the probability that a sub-token is unmasked at time t (docs/method.md §3.1):
    loglinear is 1 - (1 - 1e-3) t (text), polynomial (1 - t)^3 (images), linear 1 - t (toy)."""
    time_eps: float = field(default=1e-3, metadata=TIME_EPS_RANGE)
    """Smallest diffusion time of the likelihood estimates and (unless train_time_eps is
    set) of training, t in [eps, 1); keeps the loss weight w(t) (1/t for linear and
    loglinear) finite. MDLM: 1e-3."""
    train_time_eps: float | None = None
    """Smallest diffusion time of training, t in [train_time_eps, 1); null: time_eps. 0:
    t ~ U[0, 1) (the authors' image training), for the cross-entropy objective only."""
    backbone: BackboneParams = field(default_factory=ToyMLPParams)
    """The denoiser network: ``name`` picks toy-mlp (2-D toy), dit (text) or unet (images)."""
    masking: MaskingName = "independent"
    """Training's y_t at time t: independent masks each sub-token with probability
    1 - alpha_t (MDLM, the paper); at_least_one masks one sub-token of each sequence for
    sure and reweights by the likelihood ratio (prime.mask_at_least_one): the same
    objective, less variance on short sequences. Not with a loss that charges a clean
    sequence (cross_entropy, published without carry-over)."""

    def __post_init__(self) -> None:
        if self.ell < 1:
            raise ConfigError(f"model.ell: must be >= 1, got {self.ell}")
        check_train_time_eps(self.train_time_eps, self.objective)
        problem = masking_problem(self.masking, self.objective, self.carry_over)
        if problem:
            raise ConfigError(f"model.masking: {problem}")


@MODELS.register("prime")
class Prime(ModelEntry):
    """MDM-Prime: ell sub-tokens per token, joint (carry-over on/off) or independent decoder."""

    Params = PrimeParams

    @classmethod
    def check_data(cls, params: PrimeParams, data: DataSpec) -> None:
        check_ell(params.ell, data.num_classes)

    @classmethod
    def build(cls, params: PrimeParams, data: DataSpec) -> MaskedDiffusion:
        cls.check_data(params, data)
        codec = SubTokenizer(data.num_classes, params.ell)
        out_dim = data.num_classes if params.decoder == "joint" else params.ell * codec.base
        network = build_backbone(params.backbone, data, params.ell, codec.base, out_dim)
        return MaskedDiffusion(
            network,
            codec,
            params.schedule,
            decoder=params.decoder,
            carry_over=params.carry_over,
            objective=params.objective,
            time_eps=params.time_eps,
            train_time_eps=params.train_time_eps,
            masking=params.masking,
        )
