"""Baselines written on prime's shared pieces."""

from .ar import AutoregressiveLM
from .mdm import build_mdm

__all__ = ["AutoregressiveLM", "build_mdm"]
