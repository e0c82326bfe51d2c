"""Exponential moving average of model weights, checkpointed with the model.

    shadow <- d_n * shadow + (1 - d_n) * param,   d_n = min(decay, (1 + k) / (10 + k)),

with k = n + offset and n the number of updates before this one: offset 0 gives
d_0 = 1/10, offset 1 (MDLM's and the authors' EMA, which count the update itself) d_0 =
2/11. The shadow starts from the model's weights, or from given ones (``start``: a
fine-tuned run whose EMA begins at the network's random initial weights).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["EMA"]


class EMA(nn.Module):
    """Shadow copies of ``model``'s floating-point parameters, stored as buffers so they
    travel with ``state_dict`` (and hence with every Lightning checkpoint).

    ``offset`` (0 or 1) shifts the warm-up count (see the module docstring); ``start``
    maps parameter names (``model.named_parameters()``) to the tensors the shadows start
    from, else they start from the model's current weights.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float,
        *,
        offset: int = 0,
        start: Mapping[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        if offset not in (0, 1):
            raise ValueError(f"EMA offset must be 0 or 1, got {offset}")
        self.decay, self.offset = decay, offset
        self._names = [n for n, p in model.named_parameters() if p.dtype.is_floating_point]
        missing = [name for name in self._names if start is not None and name not in start]
        if missing:
            raise ValueError(f"EMA start: no weights for {', '.join(missing[:3])}")
        for i, name in enumerate(self._names):
            param = model.get_parameter(name)
            first = param if start is None else start[name].to(param.device, param.dtype)
            if first.shape != param.shape:
                raise ValueError(
                    f"EMA start: {name} has shape {tuple(first.shape)}, the model's "
                    f"{tuple(param.shape)}"
                )
            self.register_buffer(f"shadow_{i}", first.detach().clone())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def decay_at(self, n: int) -> float:
        """d_n of the update after n earlier ones."""
        k = n + self.offset
        return min(self.decay, (1 + k) / (10 + k))

    def _pairs(self, model: nn.Module) -> Iterator[tuple[torch.Tensor, nn.Parameter]]:
        for i, name in enumerate(self._names):
            yield getattr(self, f"shadow_{i}"), model.get_parameter(name)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.decay_at(int(self.num_updates))
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
