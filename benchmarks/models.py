"""Model registry entries: typed parameters -> a model with ``training_loss`` and ``losses``.

@MODELS.register("name")
class Entry(ModelEntry):
    Params = SomeFrozenDataclass
    @classmethod
    def build(cls, params, data): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from baselines import AutoregressiveLM, BlockDiffusion, LabelMixture, build_mdm
from prime import MaskedDiffusion, SubTokenizer

from .backbones import BackboneParams, DiTParams, ToyMLPParams, UNetParams, build_backbone
from .core import ConfigError, DataSpec, ModelEntry, require_at_least
from .registry import MODELS

__all__ = [
    "ModelEntry",
    "PrimeParams",
    "MDMParams",
    "ARParams",
    "BD3LMParams",
    "MixtureParams",
]

ScheduleName = Literal["linear", "loglinear", "polynomial", "cosine"]


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
        return AutoregressiveLM(network, c, bos_id=data.bos_id)


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


@dataclass(frozen=True)
class BD3LMParams:
    """Block diffusion: BD3-LM (ell = 1) or block diffusion over ell sub-tokens.

    ``window``: training times [beta, omega] (null: [time_eps, 1], the unbiased NELBO);
    ``window_search_every``: every this many steps, set the window to the candidate of
    least per-block loss variance on held-out rows (0: never; BD3-LM's data-driven
    schedule). Evaluation always uses [time_eps, 1].
    """

    block_size: int = 4
    ell: int = 1
    carry_over: bool = True
    objective: Literal["published", "valid"] = "valid"
    schedule: ScheduleName = "loglinear"
    time_eps: float = 1e-3
    window: tuple[float, float] | None = None
    window_search_every: int = 0
    window_search_rows: int = 64
    attention: Literal["auto", "sdpa", "flex"] = "auto"
    backbone: DiTParams = field(default_factory=DiTParams)

    def __post_init__(self) -> None:
        require_at_least(self, "model", ("block_size", "ell", "window_search_rows"))
        if self.window_search_every < 0:
            raise ConfigError(
                f"model.window_search_every: must be >= 0, got {self.window_search_every}"
            )
        if not 0.0 <= self.time_eps < 1.0:
            raise ConfigError(f"model.time_eps: must be in [0, 1), got {self.time_eps}")
        if self.window is not None and not 0.0 <= self.window[0] < self.window[1] <= 1.0:
            raise ConfigError(
                f"model.window: expected [beta, omega] with 0 <= beta < omega <= 1, "
                f"got {list(self.window)}"
            )
        if self.backbone.time_conditioned:
            raise ConfigError(
                "model.backbone.time_conditioned: block diffusion needs false "
                "(the blocks of a sequence have different times)"
            )


@MODELS.register("bd3lm")
class BD3LM(ModelEntry):
    """BD3-LM: autoregressive over blocks of L' tokens, masked diffusion inside a block;
    with ell > 1 the diffusion runs over the block's sub-tokens (joint decoder)."""

    Params = BD3LMParams

    @classmethod
    def build(cls, params: BD3LMParams, data: DataSpec) -> BlockDiffusion:
        if params.block_size > data.seq_len:
            raise ConfigError(
                f"model.block_size: {params.block_size} exceeds the sequence length {data.seq_len}"
            )
        codec = SubTokenizer(data.num_classes, params.ell)
        network = build_backbone(params.backbone, data, params.ell, codec.base, data.num_classes)
        return BlockDiffusion(
            network,
            codec,
            params.block_size,
            params.schedule,
            carry_over=params.carry_over,
            objective=params.objective,
            time_eps=params.time_eps,
            window=params.window,
            attention=params.attention,
        )
