"""The ``mdm-mixture`` model entry: MDM whose denoiser mixes K auxiliary labels
(:class:`baselines.LabelMixture`; the paper's Table 3 baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from baselines import LabelMixture, build_mdm
from prime import MaskedDiffusion

from ..core import DataSpec, ModelEntry, require_at_least
from ..registry import MODELS
from .backbone_params import UNetParams, build_backbone
from .diffusion_settings import TIME_EPS_RANGE, ScheduleName, check_train_time_eps

__all__ = ["MixtureParams", "MDMMixture"]


@dataclass(frozen=True)
class MixtureParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("train_time_eps", "label_input")

    schedule: ScheduleName = "polynomial"
    """alpha_t, the probability that a token is unmasked at time t (docs/method.md §3.1); the
    paper's image models use polynomial, (1 - t)^3 = s^3 in flow time s."""
    time_eps: float = field(default=1e-3, metadata=TIME_EPS_RANGE)
    """Smallest diffusion time of the likelihood estimates, t in [eps, 1], and of training
    unless train_time_eps is set; keeps the loss weight w(t) finite."""
    train_time_eps: float | None = None
    """Smallest diffusion time of training, t in [train_time_eps, 1); null: time_eps. 0:
    t ~ U[0, 1) (the authors' image training), for the cross-entropy objectives only."""
    objective: Literal["valid", "cross_entropy", "cross_entropy_257"] = "cross_entropy"
    """Training loss: valid is the continuous-time NELBO; cross_entropy is the unweighted
    -log p(x_0^i | y_t) at every token (the paper's image training, docs/method.md §3.3);
    cross_entropy_257 the same over C + 1 outputs, the mask class too (as for mdm)."""
    num_labels: int = 4
    """K auxiliary labels: training conditions on a uniform random label, sampling averages
    p_theta(x | y_t, k) over the K labels (docs/method.md §7.3; the paper: 4)."""
    label_input: Literal["embedding", "none"] = "embedding"
    """How the label enters the U-Net: embedding adds a learned vector per label to every
    pixel's input features; none: no layer reads it, as in the authors' released code
    (their U-Net has no classes and ignores the label), which makes the K components one
    distribution: MDM with the same network (training draws no label, sampling one call)."""
    backbone: UNetParams = field(default_factory=UNetParams)
    """The U-Net (the only backbone that takes labels)."""

    def __post_init__(self) -> None:
        require_at_least(self, "model", ("num_labels",), minimum=2)
        check_train_time_eps(self.train_time_eps, self.objective)


@MODELS.register("mdm-mixture")
class MDMMixture(ModelEntry):
    """MDM-Mixture: MDM whose denoiser is a mixture over K auxiliary labels."""

    Params = MixtureParams

    @classmethod
    def build(cls, params: MixtureParams, data: DataSpec) -> MaskedDiffusion:
        c, out = data.num_classes, data.num_classes + (params.objective == "cross_entropy_257")
        labels = params.num_labels if params.label_input == "embedding" else 0
        network = build_backbone(params.backbone, data, 1, c, out, num_labels=labels)
        return build_mdm(
            LabelMixture(network, params.num_labels, label_input=bool(labels)),
            c,
            params.schedule,
            time_eps=params.time_eps,
            train_time_eps=params.train_time_eps,
            objective=params.objective,
        )
