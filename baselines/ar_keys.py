"""Parameter names of the authors' ARM (MDLM / MDM-Prime ``models/autoregressive.py``) ->
:class:`~baselines.ar_transformer.ARMTransformer`'s.

Their ``AR`` holds the same tensors as an ``ARMTransformer`` of the same sizes; the names
are those of MDLM's DiT without its time conditioning, so the renaming is the DiT's
(:func:`prime.backbones.dit_keys.dit_key`) restricted to the names an ARM has:

    vocab_embed.embedding             -> embed.weight            (C + 1, D); row C: mask
    blocks.{i}.norm1.weight           -> blocks.{i}.norm1.weight
    blocks.{i}.attn_qkv.weight        -> blocks.{i}.qkv.weight    (3D, D); rows q, k, v; heads
    blocks.{i}.attn_out.weight        -> blocks.{i}.proj.weight
    blocks.{i}.norm2.weight           -> blocks.{i}.norm2.weight
    blocks.{i}.mlp.{0,2}.{weight,bias} -> blocks.{i}.mlp.{0,2}.{weight,bias}
    output_layer.norm_final.weight    -> norm_out.weight
    output_layer.linear.{weight,bias} -> head.{weight,bias}       (C + 1) rows; row C: mask

``rotary_emb.inv_freq`` is a buffer of theirs (base 10,000 over the head width) that the
suite computes; it is checked, not loaded. A name with time conditioning (``sigma_map``,
``adaLN_modulation``) belongs to a diffusion DiT, not to an ARM, and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from prime.backbones.dit_keys import ROTARY_BUFFER, dit_key, from_dit_names

__all__ = ["arm_key", "from_arm_names"]

_DIFFUSION_ONLY = ("sigma_map.", "adaLN_modulation.")


def arm_key(name: str) -> str:
    """The :class:`ARMTransformer` name of the authors' ARM parameter ``name``; KeyError
    if it is not one of an ARM's."""
    if any(part in name for part in _DIFFUSION_ONLY):
        raise KeyError(f"not a parameter name of the authors' ARM (time-conditioned): {name!r}")
    try:
        return dit_key(name)
    except KeyError:
        raise KeyError(f"not a parameter name of the authors' ARM: {name!r}") from None


def from_arm_names(
    state: Mapping[str, torch.Tensor], head_dim: int | None = None
) -> dict[str, torch.Tensor]:
    """Rename the authors' ARM ``state`` (without a ``backbone.`` prefix) to
    :class:`ARMTransformer`'s names; the rotary buffer is dropped (checked against
    ``head_dim`` when given, as :func:`prime.backbones.dit_keys.from_dit_names` does)."""
    for name in state:
        if name != ROTARY_BUFFER:
            arm_key(name)  # refuse a diffusion DiT's names before renaming
    return from_dit_names(state, head_dim)
