"""Exponential moving average of model weights, checkpointed with the model.

    shadow <- d_n * shadow + (1 - d_n) * param,   d_n = min(decay, (1 + n) / (10 + n))

(the warm-up of MDLM and the image code; n counts updates).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["EMA"]


class EMA(nn.Module):
    """Shadow copies of ``model``'s floating-point parameters, stored as buffers so they
    travel with ``state_dict`` (and hence with every Lightning checkpoint)."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self._names = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
        for i, name in enumerate(self._names):
            self.register_buffer(f"shadow_{i}", model.get_parameter(name).detach().clone())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def _pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, nn.Parameter]]:
        for i, name in enumerate(self._names):
            yield getattr(self, f"shadow_{i}"), model.get_parameter(name)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.num_updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        for shadow, param in self._pairs(model):
            shadow.lerp_(param.detach().to(shadow.dtype), 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` for good."""
        for shadow, param in self._pairs(model):
            param.copy_(shadow)

    @contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model``."""
        saved = [param.detach().clone() for _, param in self._pairs(model)]
        with torch.no_grad():
            for shadow, param in self._pairs(model):
                param.copy_(shadow)
        try:
            yield model
        finally:
            with torch.no_grad():
                for (_, param), old in zip(self._pairs(model), saved, strict=True):
                    param.copy_(old)
