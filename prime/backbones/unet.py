"""ADM U-Net over pixel sub-tokens (PRIME_SPEC §4.2, §7.3).

Tokens: every pixel-channel value of an image (channels x H x W) is a token over C = 256
classes, split into ell sub-tokens; the sequence order is (channel, row, column), so
y_t is (B, channels*H*W, ell). Encoder: one shared table E in R^{(b+1) x (d/ell)}; a
token's ell embeddings are concatenated to width d, and the ``channels`` tokens of a
pixel to width channels * d = the U-Net's first width (model_channels * mult[0]; 96 * 3 =
288 for RGB in the paper), so there is no input convolution.

U-Net (the paper's configuration, no time input): per level ``res_blocks`` residual
blocks (GroupNorm, SiLU, 3x3 conv, dropout, zero-initialised 3x3 conv; 1x1 skip when
the width changes) with multi-head self-attention (head width ``head_dim``, SDPA) at the
downsampling factors in ``attention_at``; average-pool down / nearest up sampling (no
resampling convolutions); a residual-attention-residual middle; skip connections; and a
zero-initialised 3x3 output conv to channels * C logits, returned as (B, L, C).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dit import SubTokenEmbedding

__all__ = ["UNetConfig", "UNET_PRESETS", "PixelUNet"]


@dataclass(frozen=True)
class UNetConfig:
    model_channels: int = 96
    channel_mult: tuple[int, ...] = (3, 4, 4)
    res_blocks: int = 5
    attention_at: tuple[int, ...] = (2,)  # downsampling factors with attention (2: 16x16)
    head_dim: int = 64
    dropout: float = 0.4


UNET_PRESETS = {
    "paper": UNetConfig(96, (3, 4, 4), 5, (2,), 64, 0.4),
    "cpu": UNetConfig(32, (3, 3), 1, (2,), 32, 0.1),
}


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            _norm(c_in),
            nn.SiLU(),
            nn.Conv2d(c_in, c_out, 3, padding=1),
            _norm(c_out),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv2d(c_out, c_out, 3, padding=1)),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class _Attention(nn.Module):
    def __init__(self, channels: int, head_dim: int):
        super().__init__()
        if channels % head_dim:
            raise ValueError(f"U-Net width {channels} is not a multiple of head_dim={head_dim}")
        self.heads = channels // head_dim
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        # "new order": split heads first, then q, k, v within each head.
        q, k, v = (
            qkv.reshape(b, self.heads, 3 * c // self.heads, h * w).transpose(2, 3).chunk(3, -1)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        out = out.transpose(2, 3).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class _Level(nn.Module):
    def __init__(self, c_in: int, c_out: int, attention: bool, cfg: UNetConfig):
        super().__init__()
        self.res = _ResBlock(c_in, c_out, cfg.dropout)
        self.attn = _Attention(c_out, cfg.head_dim) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x))


class PixelUNet(nn.Module):
    """ADM U-Net denoiser over sub-tokenised pixels.

    Args:
        config: sizes (``UNET_PRESETS``).
        channels: image channels (3 for RGB, 1 for grayscale); tokens are (channel, row, col).
        size: image side H = W; must be divisible by 2**(levels - 1).
        base: b, the sub-token alphabet size.
        ell: sub-tokens per pixel-channel value; must divide the token width.
        num_classes: C (256 for 8-bit pixels): logits per token.
    """

    time_conditioned = False

    def __init__(
        self,
        config: UNetConfig,
        channels: int,
        size: int,
        base: int,
        ell: int,
        num_classes: int,
        num_labels: int = 0,
    ):
        super().__init__()
        width = config.model_channels * config.channel_mult[0]
        if width % channels:
            raise ValueError(f"U-Net first width {width} is not divisible by channels={channels}")
        token_dim = width // channels
        if token_dim % ell:
            raise ValueError(
                f"the pixel sub-token encoder needs ell to divide the token width: "
                f"ell={ell} does not divide {token_dim}"
            )
        levels = len(config.channel_mult)
        if size % 2 ** (levels - 1):
            raise ValueError(f"image size {size} is not divisible by 2**{levels - 1}")
        self.channels, self.size, self.num_classes = channels, size, num_classes
        self.embed = SubTokenEmbedding(base, ell, token_dim)
        # Class / mixture-component conditioning: a learned vector added to every pixel's
        # input features (MDM-Mixture's auxiliary label).
        self.label_embed = nn.Embedding(num_labels, width) if num_labels else None

        self.down = nn.ModuleList()
        skips, ch = [width], width
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.res_blocks):
                attention = 2**level in config.attention_at
                self.down.append(_Level(ch, mult * config.model_channels, attention, config))
                ch = mult * config.model_channels
                skips.append(ch)
            if level < levels - 1:
                self.down.append(nn.AvgPool2d(2))
                skips.append(ch)
        self.middle = nn.Sequential(
            _ResBlock(ch, ch, config.dropout),
            _Attention(ch, config.head_dim),
            _ResBlock(ch, ch, config.dropout),
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.res_blocks + 1):
                attention = 2**level in config.attention_at
                out = mult * config.model_channels
                self.up.append(_Level(ch + skips.pop(), out, attention, config))
                ch = out
                if level and i == config.res_blocks:
                    self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(
            _norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, channels * num_classes, 3, padding=1))
        )

    def embed_pixels(self, y: torch.Tensor) -> torch.Tensor:
        """(B, channels*H*W, ell) sub-tokens -> (B, channels*token_dim, H, W) features:
        channel c of pixel (r, col) fills feature slots [c*token_dim, (c+1)*token_dim)."""
        b, n, ell = y.shape
        c, s = self.channels, self.size
        if n != c * s * s:
            raise ValueError(f"expected {c}*{s}*{s} = {c * s * s} tokens, got {n}")
        h = self.embed(y.view(b, c, s, s, ell))  # (B, c, H, W, token_dim)
        return h.permute(0, 1, 4, 2, 3).reshape(b, -1, s, s)

    def forward(
        self, y: torch.Tensor, t: torch.Tensor | None = None, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y (B, channels*H*W, ell), label (B,) or None -> logits (B, channels*H*W, C)."""
        h = self.embed_pixels(y)
        if self.label_embed is not None:
            if label is None:
                raise ValueError("this U-Net is label-conditioned: pass label (B,)")
            h = h + self.label_embed(label)[:, :, None, None]
        hs = [h]
        for layer in self.down:
            h = layer(h)
            hs.append(h)
        h = self.middle(h)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], dim=1)) if isinstance(layer, _Level) else layer(h)
        b, s = y.shape[0], self.size
        logits = self.out(h).view(b, self.channels, self.num_classes, s, s)
        return logits.permute(0, 1, 3, 4, 2).reshape(b, y.shape[1], self.num_classes)
