"""Baselines written on prime's shared pieces."""

from .mdm import build_mdm

__all__ = ["build_mdm"]
