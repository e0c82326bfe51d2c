"""Denoiser networks of the model entries: typed parameters -> a backbone module.

``build_backbone`` picks the network named by ``params.name`` (the 2-D toy's MLP, MDLM's
DiT, the ADM U-Net, the authors' autoregressive transformer) and sizes it for the task's
data and the model's sub-token codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from torch import nn

from baselines import ARM_PRESETS, ARMConfig, ARMTransformer
from prime.backbones import (
    DIT_PRESETS,
    UNET_PRESETS,
    DiT,
    DiTConfig,
    PixelUNet,
    ToyMLP,
    UNetConfig,
)

from ..config.validation import within
from ..core import ConfigError, DataSpec, require_at_least

__all__ = [
    "ToyMLPParams",
    "DiTParams",
    "UNetParams",
    "ARMParams",
    "BackboneParams",
    "build_backbone",
]

DROPOUT_RANGE = within(0, 1, high_open=True, why="a dropout probability, or null: the preset's")


@dataclass(frozen=True)
class ToyMLPParams:
    """The 2-D toy's MLP (docs/method.md §4.3, §7.4)."""

    name: Literal["toy-mlp"] = "toy-mlp"
    """Selects this backbone."""
    emb_dim: int = 64
    """d, width of one sub-token embedding; the L ell embeddings are concatenated (the
    paper's toy: 512 for every sub-token)."""
    hidden: int = 512
    """Width of the hidden layers (the paper: 512)."""
    depth: int = 2
    """Hidden blocks Linear -> LayerNorm -> learnable Swish -> Dropout (the paper: 2)."""
    dropout: float = 0.1
    """Dropout probability after each hidden block (the paper: 0.1)."""
    time_conditioned: bool = True
    """Append t to the input features (the paper's toy does); false: the network ignores t,
    and the sampler may reuse its output after an idle step."""

    def __post_init__(self) -> None:
        require_at_least(self, "backbone", ("emb_dim", "hidden", "depth"))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"backbone.dropout: must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class DiTParams:
    """MDLM's diffusion transformer (docs/method.md §7.1)."""

    # Added after run ids were in use: left out of the run id at its default.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("head_float32",)

    name: Literal["dit"] = "dit"
    """Selects this backbone."""
    preset: Literal["small", "tiny", "cpu"] = "small"
    """Sizes (hidden width / blocks / heads / conditioning width / dropout): small is the
    paper's 768/12/12/128/0.1, tiny 512/8/8/128/0.1, cpu 128/2/4/64/0."""
    dropout: float | None = field(default=None, metadata=DROPOUT_RANGE)
    """Dropout probability; null: the preset's."""
    time_conditioned: bool = False
    """Feed t to the adaLN conditioning; false feeds 0 (MDLM and the paper), so the sampler
    may reuse a prediction after an idle step."""
    head_float32: bool = False
    """Run the final layer (adaLN modulation, LayerNorm, the D -> out_dim head) with
    autocast disabled, in float32, while the blocks run in the training precision (the
    authors' Prime network); false: the same precision as the blocks (MDLM's DiT)."""

    def config(self) -> DiTConfig:
        base = DIT_PRESETS[self.preset]
        return base if self.dropout is None else replace(base, dropout=self.dropout)


@dataclass(frozen=True)
class UNetParams:
    """ADM U-Net over pixel sub-tokens, without a time input (docs/method.md §4.2, §7.3)."""

    name: Literal["unet"] = "unet"
    """Selects this backbone."""
    preset: Literal["paper", "cpu", "cpu-patch"] = "paper"
    """Sizes (model channels, channel multipliers, res-blocks per level, head width,
    dropout): paper 96, (3, 4, 4), 5, 64, 0.4; cpu 32, (3, 3), 1, 32, 0.1, both attending
    at half resolution (16 x 16 for 32 x 32 images); cpu-patch is cpu on 2 x 2 pixel
    patches (a quarter of the positions, attention at a quarter resolution)."""
    dropout: float | None = field(default=None, metadata=DROPOUT_RANGE)
    """Dropout probability; null: the preset's."""

    def config(self) -> UNetConfig:
        base = UNET_PRESETS[self.preset]
        return base if self.dropout is None else replace(base, dropout=self.dropout)


@dataclass(frozen=True)
class ARMParams:
    """The authors' autoregressive network (ARM): a plain pre-LayerNorm causal transformer
    (:mod:`baselines.ar_transformer`), for the autoregressive model only."""

    name: Literal["arm"] = "arm"
    """Selects this backbone."""
    preset: Literal["small", "cpu"] = "small"
    """Sizes (hidden width / blocks / heads / dropout): small is the authors' small-ar,
    768/12/12/0.1; cpu 128/2/4/0."""
    dropout: float | None = None
    """Dropout probability on the attention and MLP outputs; null: the preset's."""

    def __post_init__(self) -> None:
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"backbone.dropout: must be in [0, 1), got {self.dropout}")

    def config(self) -> ARMConfig:
        base = ARM_PRESETS[self.preset]
        return base if self.dropout is None else replace(base, dropout=self.dropout)


BackboneParams = ToyMLPParams | DiTParams | UNetParams


def build_backbone(
    params: BackboneParams | ARMParams,
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
    if params.name == "arm":
        if not causal or ell != 1 or base != out_dim:
            raise ConfigError(
                "model.backbone: 'arm' is the autoregressive model's network (causal, one "
                "output per token class); use 'dit'"
            )
        return ARMTransformer(params.config(), out_dim)
    if params.name == "dit":
        try:
            return DiT(
                params.config(),
                base,
                ell,
                out_dim,
                time_conditioned=params.time_conditioned,
                causal=causal,
                head_float32=params.head_float32,
            )
        except ValueError as err:
            raise ConfigError(f"model.backbone: {err}") from None
    if causal:
        raise ConfigError(f"model.backbone: {params.name} cannot be causal; use 'dit' or 'arm'")
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
