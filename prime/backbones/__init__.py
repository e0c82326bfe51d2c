"""Denoiser networks shared by MDM-Prime and the baselines.

Every backbone maps noised sub-tokens y_t (B, L, ell) and times t (B,) to per-token
outputs (B, L, out_dim). The attribute ``time_conditioned`` says whether the output
depends on t (if not, a sampler may reuse a prediction across idle steps).
"""

from .attention import KVCache
from .dit import DIT_PRESETS, DiT, DiTConfig, SubTokenEmbedding
from .toy_mlp import LearnableSwish, ToyMLP
from .unet import UNET_PRESETS, PixelUNet, UNetConfig

__all__ = [
    "KVCache",
    "DiT",
    "DiTConfig",
    "DIT_PRESETS",
    "SubTokenEmbedding",
    "PixelUNet",
    "UNetConfig",
    "UNET_PRESETS",
    "ToyMLP",
    "LearnableSwish",
]
