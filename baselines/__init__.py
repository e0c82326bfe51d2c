"""Baselines written on prime's shared pieces."""

from .ar import AutoregressiveLM
from .ar_transformer import ARM_PRESETS, ARMConfig, ARMTransformer
from .bd3lm import BlockDiffusion
from .block_attention import context_mask, dense_training_mask, training_mask
from .block_sampler import sample_blocks
from .clipped_windows import DEFAULT_WINDOWS
from .mdm import build_mdm
from .mixture import LabelMixture

__all__ = [
    "ARM_PRESETS",
    "ARMConfig",
    "ARMTransformer",
    "AutoregressiveLM",
    "BlockDiffusion",
    "DEFAULT_WINDOWS",
    "LabelMixture",
    "build_mdm",
    "context_mask",
    "dense_training_mask",
    "sample_blocks",
    "training_mask",
]
