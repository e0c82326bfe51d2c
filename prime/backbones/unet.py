"""ADM U-Net over pixel sub-tokens (docs/method.md §4.2, §7.3).

Tokens: every pixel-channel value of an image (channels x H x W) is a token over C = 256
classes, split into ell sub-tokens; the sequence order is (channel, row, column), so
y_t is (B, channels*H*W, ell). Encoder: one shared table E in R^{(b+1) x (d/ell)} (row b
is the mask; entries N(0, 1) at initialisation); a token's ell embeddings are concatenated
to width d, and the ``channels`` tokens of a pixel to width channels * d = the U-Net's
first width (model_channels * mult[0]; 96 * 3 = 288 for RGB in the paper), so there is no
input convolution. With ``patch`` = p > 1 one grid position holds a p x p patch: its
channels * p^2 tokens are concatenated to the first width (H/p x W/p positions), and the
output conv gives their channels * p^2 * C logits.

U-Net (the paper's configuration, no time input): per level ``res_blocks`` residual
blocks with multi-head self-attention (head width ``head_dim``, SDPA) at the downsampling
factors in ``attention_at``; average-pool down / nearest up sampling (no resampling
convolutions); a residual-attention-residual middle; skip connections; and a
zero-initialised 3x3 output conv to channels * C logits, returned as (B, L, C). A residual
block of width c_in -> c is

    h = Conv3(SiLU(GN(x))),   h = GN(h) * (1 + s) + m,
    out = skip(x) + ZeroConv3(Dropout(SiLU(h))),

where (s, m) in R^c x R^c is a learned per-block constant (the scale-shift norm's
conditioning, which without a time input is one trained vector, initialised uniform in
+-sqrt(4 * model_channels), the width a time embedding would have), and skip is a 1x1
conv when c_in != c. GroupNorm has 32 groups (gcd(32, width) for widths that 32 does not
divide) and eps 1e-5.
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
    patch: int = 1  # pixels per side of one grid position (space-to-depth)
    head_kernel: int = 3  # side of the output conv's kernel


UNET_PRESETS = {
    "paper": UNetConfig(96, (3, 4, 4), 5, (2,), 64, 0.4),
    "cpu": UNetConfig(32, (3, 3), 1, (2,), 32, 0.1),
    # 2 x 2 patches: a quarter of the positions, so about a quarter of the convolutions'
    # work; attention on the 7 x 7 (Fashion-MNIST) or 8 x 8 (32 x 32) grid.
    "cpu-patch": UNetConfig(32, (3, 3), 1, (2,), 32, 0.1, patch=2, head_kernel=1),
}


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _emb_dim(cfg: UNetConfig) -> int:
    """ADM's time-embedding width, 4 * model_channels: it sets the scale-shift init."""
    return 4 * cfg.model_channels


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class _ResBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H, W); the scale-shift constant ``scale_shift`` is
    (1, 2 c_out): scales s first, shifts m second."""

    def __init__(self, c_in: int, c_out: int, dropout: float, emb_dim: int):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.scale_shift = nn.Parameter(torch.empty(1, 2 * c_out))
        nn.init.uniform_(self.scale_shift, -math.sqrt(emb_dim), math.sqrt(emb_dim))
        self.out_layers = nn.Sequential(
            _norm(c_out),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv2d(c_out, c_out, 3, padding=1)),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.scale_shift[:, :, None, None].chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers[1:](h)


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
        # ADM's "new order": split q, k, v first (rows [0, c), [c, 2c), [2c, 3c)), then
        # heads within each (head i: rows [i*c/heads, (i+1)*c/heads) of q, k and v).
        q, k, v = (
            t.reshape(b, self.heads, c // self.heads, h * w).transpose(2, 3)
            for t in qkv.chunk(3, dim=1)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        out = out.transpose(2, 3).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class _Level(nn.Module):
    """A residual block, then attention (if ``attention``), then 2x nearest upsampling
    (if ``upsample``: the last block of an up-path level above the lowest resolution)."""

    def __init__(
        self, c_in: int, c_out: int, attention: bool, cfg: UNetConfig, upsample: bool = False
    ):
        super().__init__()
        self.res = _ResBlock(c_in, c_out, cfg.dropout, _emb_dim(cfg))
        self.attn = _Attention(c_out, cfg.head_dim) if attention else nn.Identity()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest") if upsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.attn(self.res(x)))


class PixelUNet(nn.Module):
    """ADM U-Net denoiser over sub-tokenised pixels.

    Args:
        config: sizes (``UNET_PRESETS``).
        channels: image channels (3 for RGB, 1 for grayscale); tokens are (channel, row, col).
        size: image side H = W; must be divisible by 2**(levels - 1).
        base: b, the sub-token alphabet size.
        ell: sub-tokens per pixel-channel value; must divide the token width.
        num_classes: logits per token: C (256 for 8-bit pixels), or C + 1 = 257 for a head
            with a mask class (:mod:`prime.mask_class`, the authors' ell = 1 network).
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
        p = config.patch
        per_position = channels * p * p
        if width % per_position:
            raise ValueError(
                f"U-Net first width {width} is not divisible by channels * patch^2 = "
                f"{channels} * {p}^2"
            )
        token_dim = width // per_position
        if token_dim % ell:
            raise ValueError(
                f"the pixel sub-token encoder needs ell to divide the token width: "
                f"ell={ell} does not divide {token_dim}"
            )
        levels = len(config.channel_mult)
        if size % (p * 2 ** (levels - 1)):
            raise ValueError(f"image size {size} is not divisible by patch * 2**{levels - 1}")
        self.channels, self.size, self.num_classes, self.patch = channels, size, num_classes, p
        self.embed = SubTokenEmbedding(base, ell, token_dim)
        nn.init.normal_(self.embed.weight)  # the image encoder is a plain nn.Embedding
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
        emb_dim = _emb_dim(config)
        self.middle = nn.Sequential(
            _ResBlock(ch, ch, config.dropout, emb_dim),
            _Attention(ch, config.head_dim),
            _ResBlock(ch, ch, config.dropout, emb_dim),
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.res_blocks + 1):
                attention = 2**level in config.attention_at
                out = mult * config.model_channels
                upsample = level > 0 and i == config.res_blocks
                self.up.append(_Level(ch + skips.pop(), out, attention, config, upsample))
                ch = out
        self.out = nn.Sequential(
            _norm(ch),
            nn.SiLU(),
            _zero(nn.Conv2d(ch, per_position * num_classes, config.head_kernel, padding="same")),
        )

    def embed_pixels(self, y: torch.Tensor) -> torch.Tensor:
        """(B, channels*H*W, ell) sub-tokens -> (B, channels*p^2*token_dim, H/p, W/p)
        features: channel c of pixel (r, col) fills the slots [k*token_dim, (k+1)*token_dim)
        of position (r // p, col // p), k = (c*p + r % p)*p + col % p (k = c when p = 1)."""
        b, n, ell = y.shape
        c, s, p = self.channels, self.size, self.patch
        if n != c * s * s:
            raise ValueError(f"expected {c}*{s}*{s} = {c * s * s} tokens, got {n}")
        h = self.embed(y.view(b, c, s // p, p, s // p, p, ell))  # (B, c, H/p, p, W/p, p, d)
        return h.permute(0, 1, 3, 5, 6, 2, 4).reshape(b, -1, s // p, s // p)

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
            h = layer(torch.cat([h, hs.pop()], dim=1))
        b, s, p = y.shape[0], self.size, self.patch
        # Output channel (k, class) with k as in embed_pixels: the inverse of its layout.
        logits = self.out(h).view(b, self.channels, p, p, self.num_classes, s // p, s // p)
        logits = logits.permute(0, 1, 5, 2, 6, 3, 4)  # (B, c, H/p, p, W/p, p, C)
        return logits.reshape(b, y.shape[1], self.num_classes)
