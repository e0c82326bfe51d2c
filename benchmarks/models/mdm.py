"""The ``mdm`` entry: MDM / MDLM, masked diffusion over whole tokens (Prime with ell = 1,
built by :func:`baselines.build_mdm`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from baselines import build_mdm
from prime import MaskedDiffusion, masking_problem

from ..core import ConfigError, DataSpec, ModelEntry
from ..registry import MODELS
from .backbone_params import BackboneParams, ToyMLPParams, build_backbone
from .diffusion_settings import TIME_EPS_RANGE, MaskingName, ScheduleName, check_train_time_eps

__all__ = ["MDMParams", "MDM"]


@dataclass(frozen=True)
class MDMParams:
    # out of run ids at their defaults
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("masking", "train_time_eps")

    schedule: ScheduleName = "loglinear"
    """alpha_t, the probability that a token is unmasked at time t (docs/method.md §3.1):
    loglinear 1 - (1 - 1e-3) t for MDLM (text), polynomial (1 - t)^3 for the image MDM."""
    time_eps: float = field(default=1e-3, metadata=TIME_EPS_RANGE)
    """Smallest diffusion time of the likelihood estimates and (unless train_time_eps is
    set) of training, t in [eps, 1); keeps the loss weight w(t) finite. MDLM: 1e-3."""
    train_time_eps: float | None = None
    """Smallest diffusion time of training, t in [train_time_eps, 1); null: time_eps. 0:
    t ~ U[0, 1) (the authors' image training), for the cross-entropy objectives only."""
    objective: Literal["valid", "cross_entropy", "cross_entropy_257"] = "valid"
    """Training loss: valid is the continuous-time NELBO (MDLM's; at ell = 1 the published
    estimator is the same); cross_entropy is unweighted -log p at every token (images);
    cross_entropy_257 that over C + 1 outputs, the mask class too (prime.mask_class)."""
    backbone: BackboneParams = field(default_factory=ToyMLPParams)
    """The denoiser network: ``name`` picks toy-mlp (2-D toy), dit (text) or unet (images)."""
    masking: MaskingName = "independent"
    """Training's x_t: independent (MDLM) or at_least_one (one token of each sequence
    masked for sure, reweighted: the same NELBO, less variance; valid objective only)."""

    def __post_init__(self) -> None:
        check_train_time_eps(self.train_time_eps, self.objective)
        problem = masking_problem(self.masking, self.objective, carry_over=True)
        if problem:
            raise ConfigError(f"model.masking: {problem}")


@MODELS.register("mdm")
class MDM(ModelEntry):
    """MDM / MDLM: masked diffusion over whole tokens (Prime with ell = 1)."""

    Params = MDMParams

    @classmethod
    def build(cls, params: MDMParams, data: DataSpec) -> MaskedDiffusion:
        out_dim = data.num_classes + (params.objective == "cross_entropy_257")  # mask class
        network = build_backbone(params.backbone, data, 1, data.num_classes, out_dim)
        return build_mdm(
            network,
            data.num_classes,
            params.schedule,
            time_eps=params.time_eps,
            train_time_eps=params.train_time_eps,
            objective=params.objective,
            masking=params.masking,
        )
