"""Model registry entries: typed parameters -> a model with ``training_loss`` and ``losses``.

@MODELS.register("name")
class Entry(ModelEntry):
    Params = SomeFrozenDataclass
    @classmethod
    def build(cls, params, data): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from torch import nn

from baselines import AutoregressiveLM, LabelMixture, build_mdm
from prime import MaskedDiffusion, SubTokenizer
from prime.backbones import (
    DIT_PRESETS,
    UNET_PRESETS,
    DiT,
    DiTConfig,
    PixelUNet,
    ToyMLP,
    UNetConfig,
)

from .config import ConfigError, require_at_least
from .registry import MODELS
from .tasks.base import DataSpec

__all__ = [
    "ModelEntry",
    "ToyMLPParams",
    "DiTParams",
    "UNetParams",
    "PrimeParams",
    "MDMParams",
    "ARParams",
    "build_backbone",
]

ScheduleName = Literal["linear", "loglinear", "polynomial", "cosine"]


@dataclass(frozen=True)
class ToyMLPParams:
    """The 2-D toy's MLP (PRIME_SPEC §7.4: hidden 512, 2 hidden layers, dropout 0.1)."""

    name: Literal["toy-mlp"] = "toy-mlp"
    emb_dim: int = 64
    hidden: int = 512
    depth: int = 2
    dropout: float = 0.1
    time_conditioned: bool = True

    def __post_init__(self) -> None:
        require_at_least(self, "backbone", ("emb_dim", "hidden", "depth"))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"backbone.dropout: must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class DiTParams:
    """MDLM's diffusion transformer; ``preset`` sets the sizes (small = the paper's)."""

    name: Literal["dit"] = "dit"
    preset: Literal["small", "tiny", "cpu"] = "small"
    dropout: float | None = None  # None: the preset's
    time_conditioned: bool = False

    def config(self) -> DiTConfig:
        base = DIT_PRESETS[self.preset]
        return base if self.dropout is None else replace(base, dropout=self.dropout)


@dataclass(frozen=True)
class UNetParams:
    """ADM U-Net over pixel sub-tokens; ``preset`` sets the sizes (paper = the paper's)."""

    name: Literal["unet"] = "unet"
    preset: Literal["paper", "cpu"] = "paper"
    dropout: float | None = None  # None: the preset's

    def config(self) -> UNetConfig:
        base = UNET_PRESETS[self.preset]
        return base if self.dropout is None else replace(base, dropout=self.dropout)


BackboneParams = ToyMLPParams | DiTParams | UNetParams


def build_backbone(
    params: BackboneParams,
    data: DataSpec,
    ell: int,
    base: int,
    out_dim: int,
    *,
    causal: bool = False,
    num_labels: int = 0,
) -> nn.Module:
    """The denoiser network named by ``params.name`` (``num_labels``: label-conditioned)."""
    if params.name == "unet":
        if data.image_shape is None or causal:
            raise ConfigError("model.backbone: 'unet' needs an image task (non-causal)")
        channels, height, width = data.image_shape
        if height != width:
            raise ConfigError(f"model.backbone: 'unet' needs square images, got {height}x{width}")
        try:
            return PixelUNet(
                params.config(), channels, height, base, ell, out_dim, num_labels=num_labels
            )
        except ValueError as err:
            raise ConfigError(f"model.backbone: {err}") from None
    if num_labels:
        raise ConfigError(f"model.backbone: {params.name} takes no labels; use 'unet'")
    if params.name == "dit":
        try:
            return DiT(
                params.config(),
                base,
                ell,
                out_dim,
                time_conditioned=params.time_conditioned,
                causal=causal,
            )
        except ValueError as err:
            raise ConfigError(f"model.backbone: {err}") from None
    if causal:
        raise ConfigError(f"model.backbone: {params.name} cannot be causal; use 'dit'")
    if params.name == "toy-mlp":
        return ToyMLP(
            data.seq_len,
            ell,
            base,
            out_dim,
            emb_dim=params.emb_dim,
            hidden=params.hidden,
            depth=params.depth,
            dropout=params.dropout,
            time_conditioned=params.time_conditioned,
        )
    raise ConfigError(f"backbone.name: unknown backbone {params.name!r}")


class ModelEntry:
    """A registered model: ``Params`` and ``build(params, data)``."""

    Params: ClassVar[type]

    @classmethod
    def build(cls, params: object, data: DataSpec) -> nn.Module:
        raise NotImplementedError


@dataclass(frozen=True)
class PrimeParams:
    ell: int = 2
    decoder: Literal["joint", "independent"] = "joint"
    carry_over: bool = True
    objective: Literal["published", "valid", "cross_entropy"] = "published"
    schedule: ScheduleName = "loglinear"
    time_eps: float = 1e-3
    backbone: BackboneParams = field(default_factory=ToyMLPParams)

    def __post_init__(self) -> None:
        if self.ell < 1:
            raise ConfigError(f"model.ell: must be >= 1, got {self.ell}")
        if not 0.0 <= self.time_eps < 1.0:
            raise ConfigError(f"model.time_eps: must be in [0, 1), got {self.time_eps}")


@MODELS.register("prime")
class Prime(ModelEntry):
    """MDM-Prime: ell sub-tokens per token, joint (carry-over on/off) or independent decoder."""

    Params = PrimeParams

    @classmethod
    def build(cls, params: PrimeParams, data: DataSpec) -> MaskedDiffusion:
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
        )


@dataclass(frozen=True)
class MDMParams:
    schedule: ScheduleName = "loglinear"
    time_eps: float = 1e-3
    objective: Literal["valid", "cross_entropy"] = "valid"
    backbone: BackboneParams = field(default_factory=ToyMLPParams)


@MODELS.register("mdm")
class MDM(ModelEntry):
    """MDM / MDLM: masked diffusion over whole tokens (Prime with ell = 1)."""

    Params = MDMParams

    @classmethod
    def build(cls, params: MDMParams, data: DataSpec) -> MaskedDiffusion:
        network = build_backbone(params.backbone, data, 1, data.num_classes, data.num_classes)
        return build_mdm(
            network,
            data.num_classes,
            params.schedule,
            time_eps=params.time_eps,
            objective=params.objective,
        )


@dataclass(frozen=True)
class ARParams:
    backbone: DiTParams = field(default_factory=DiTParams)


@MODELS.register("ar")
class AR(ModelEntry):
    """Autoregressive baseline: the same transformer, causal, next-token loss."""

    Params = ARParams

    @classmethod
    def build(cls, params: ARParams, data: DataSpec) -> AutoregressiveLM:
        c = data.num_classes
        network = build_backbone(params.backbone, data, 1, c, c, causal=True)
        return AutoregressiveLM(network, c)


@dataclass(frozen=True)
class MixtureParams:
    schedule: ScheduleName = "polynomial"
    time_eps: float = 1e-3
    objective: Literal["valid", "cross_entropy"] = "cross_entropy"
    num_labels: int = 4
    backbone: UNetParams = field(default_factory=UNetParams)

    def __post_init__(self) -> None:
        require_at_least(self, "model", ("num_labels",), minimum=2)


@MODELS.register("mdm-mixture")
class MDMMixture(ModelEntry):
    """MDM-Mixture: MDM whose denoiser is a mixture over K auxiliary labels."""

    Params = MixtureParams

    @classmethod
    def build(cls, params: MixtureParams, data: DataSpec) -> MaskedDiffusion:
        c = data.num_classes
        network = build_backbone(params.backbone, data, 1, c, c, num_labels=params.num_labels)
        return build_mdm(
            LabelMixture(network, params.num_labels),
            c,
            params.schedule,
            time_eps=params.time_eps,
            objective=params.objective,
        )
