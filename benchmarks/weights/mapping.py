"""Load a renamed foreign state dict into one of the suite's networks, or say exactly why not."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["WeightsMismatch", "load_network"]

_SHOWN = 8  # names listed per kind of mismatch; the rest are counted


class WeightsMismatch(ValueError):
    """Released weights whose names or shapes do not fit the network they are loaded into."""


def _listing(kind: str, names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    more = f" (and {len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return f"{kind} ({len(names)}): {shown}{more}"


def load_network(network: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` (already renamed to ``network``'s parameter names) into ``network``.

    Every parameter and persistent buffer of ``network`` must be in ``state`` with the
    same shape, and ``state`` must hold nothing else; otherwise :class:`WeightsMismatch`
    names ``source`` and lists the missing keys, the unexpected keys and the keys whose
    shapes differ (file shape vs network shape). Values are cast to the network's dtypes.
    """
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    problems = [
        _listing(kind, names)
        for kind, names in (
            ("missing from the file", missing),
            ("unexpected in the file", unexpected),
            ("shape in the file vs the network", shapes),
        )
        if names
    ]
    if problems:
        raise WeightsMismatch(
            f"{source}: the weights do not fit the configured network; "
            + "; ".join(problems)
            + " (is the variant's model configured as the released one: ell, sizes, vocabulary?)"
        )
    with torch.no_grad():
        network.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)
