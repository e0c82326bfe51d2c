"""Parameter names of MDLM's text DiT (and the networks derived from it) -> :class:`DiT`'s.

MDLM's ``DIT`` (kuleshov-group/mdlm ``models/dit.py``, its hub ``DITBackbone``, and the
MDM-Prime text code's ``DIT`` / ``PerceiverDIT``) holds the same tensors as a
:class:`~prime.backbones.DiT` of the same sizes, under other names:

    vocab_embed.embedding                 -> embed.weight
    sigma_map.mlp.{0,2}.*                 -> time.mlp.{0,2}.*
    blocks.{i}.attn_qkv.weight            -> blocks.{i}.qkv.weight      (rows: q, k, v; heads)
    blocks.{i}.attn_out.weight            -> blocks.{i}.proj.weight
    blocks.{i}.adaLN_modulation.*         -> blocks.{i}.modulation.*
    blocks.{i}.norm{1,2}.weight, mlp.*    -> the same names
    output_layer.norm_final.weight        -> norm_out.weight
    output_layer.adaLN_modulation.*       -> modulation_out.*
    output_layer.linear.*                 -> head.*

``rotary_emb.inv_freq`` is a buffer of theirs that the suite computes (base 10,000, the
same frequencies); it is checked, not loaded.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["ROTARY_BUFFER", "dit_key", "from_dit_names"]

ROTARY_BUFFER = "rotary_emb.inv_freq"

_PREFIXES = (
    ("vocab_embed.embedding", "embed.weight"),
    ("sigma_map.", "time."),
    ("output_layer.norm_final.", "norm_out."),
    ("output_layer.adaLN_modulation.", "modulation_out."),
    ("output_layer.linear.", "head."),
)
_IN_BLOCK = (
    ("attn_qkv.", "qkv."),
    ("attn_out.", "proj."),
    ("adaLN_modulation.", "modulation."),
    ("norm1.", "norm1."),
    ("norm2.", "norm2."),
    ("mlp.", "mlp."),
)


def dit_key(name: str) -> str:
    """The :class:`DiT` parameter name of MDLM's DiT parameter ``name``; KeyError if the
    name is not one of theirs."""
    for old, new in _PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    if name.startswith("blocks."):
        index, _, rest = name[len("blocks.") :].partition(".")
        for old, new in _IN_BLOCK:
            if index.isdigit() and rest.startswith(old):
                return f"blocks.{index}.{new}{rest[len(old) :]}"
    raise KeyError(f"not a parameter name of MDLM's DiT: {name!r}")


def from_dit_names(
    state: Mapping[str, torch.Tensor], head_dim: int | None = None
) -> dict[str, torch.Tensor]:
    """Rename MDLM-DiT ``state`` (without a ``backbone.`` prefix) to :class:`DiT`'s names.

    The rotary buffer is dropped; with ``head_dim`` it must equal the suite's frequencies
    10000^(-2j/head_dim), otherwise ValueError (a network with other positions)."""
    out = {}
    for name, value in state.items():
        if name == ROTARY_BUFFER:
            if head_dim is not None:
                expected = 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)
                if value.shape != expected.shape or not torch.allclose(value.float(), expected):
                    raise ValueError(
                        f"{ROTARY_BUFFER}: rotary frequencies differ from base 10,000 over "
                        f"head width {head_dim}"
                    )
            continue
        out[dit_key(name)] = value
    return out
