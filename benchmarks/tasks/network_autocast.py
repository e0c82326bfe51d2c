"""The network's calls in evaluation and sampling under bfloat16 autocast, the text
tasks' ``network_precision``.

``bfloat16`` runs every call of ``model.network`` under
``torch.autocast(device_type, dtype=torch.bfloat16)``: inside it, autocast picks each
op's dtype (matmuls and linear layers in bfloat16; what a backbone keeps outside autocast,
such as the DiT's conditioning and, with ``head_float32``, its final layer, in float32).
The call's output is handed on in float32, which holds every bfloat16 value exactly, so
all that follows the call computes as in a float32 run: the log-softmax over the logits,
the likelihood estimators' grid sums and their float64 accumulation, the sampler's
probabilities and noise in its ``sampling_dtype``. Autocast around the whole likelihood
or sampler would run those sums' batched matmuls in bfloat16 too.

``float32`` changes nothing: no autocast, the network untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

__all__ = ["NetworkPrecision", "network_autocast"]

NetworkPrecision = Literal["fastest", "float32", "bfloat16"]

_HALF = (torch.bfloat16, torch.float16)


@contextmanager
def network_autocast(
    model: nn.Module, precision: str, device: torch.device | str
) -> Iterator[None]:
    """Within the block, every call of ``model.network`` on ``device`` computes under
    bfloat16 autocast and returns float32 when ``precision`` is bfloat16; the network's
    own forward is restored on leaving, also after an error."""
    if precision == "float32":
        yield
        return
    if precision != "bfloat16":
        raise ValueError(f"network precision: expected float32 or bfloat16, got {precision!r}")
    network = getattr(model, "network", None)
    if not isinstance(network, nn.Module):
        raise TypeError(f"{type(model).__name__}: no .network module to run under autocast")
    device_type = torch.device(device).type
    call = network.forward
    saved = network.__dict__.get("forward")

    def forward(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the network's signature
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = call(*args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) and out.dtype in _HALF else out

    network.forward = forward
    try:
        yield
    finally:
        if saved is None:
            del network.forward
        else:
            network.forward = saved
