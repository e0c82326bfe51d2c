"""Baselines written on prime's shared pieces."""

from .ar import AutoregressiveLM
from .mdm import build_mdm
from .mixture import LabelMixture

__all__ = ["AutoregressiveLM", "LabelMixture", "build_mdm"]
