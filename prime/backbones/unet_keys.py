"""The authors' image U-Net parameter names -> :class:`~prime.backbones.PixelUNet`'s.

The authors' ``DiscretePrimeUNetModel`` (ell > 1) and ``DiscreteUNetModel`` (ell = 1) hold
the same tensors, with the same shapes and layouts, as a ``PixelUNet`` of the same sizes
(``patch`` = 1, ``head_kernel`` = 3, no labels), so loading their weights is a renaming:

    pixel_embedding.embedding_table.weight   -> embed.weight
    unet.input_blocks.{n}.0.* / .1.*         -> down.{n-1}.res.* / down.{n-1}.attn.*
    unet.middle_block.{j}.*                  -> middle.{j}.*
    unet.output_blocks.{n}.0.* / .1.*        -> up.{n}.res.* / up.{n}.attn.*
    unet.out.{j}.*                           -> out.{j}.*

and, inside the blocks, ``emb_layers.embedding_table`` -> ``scale_shift`` (the per-block
scale-shift constant), ``skip_connection`` -> ``skip``, ``proj_out`` -> ``proj``.
(``input_blocks.0`` is the identity input block and the resampling blocks are
parameter-free, so the indices line up as above.) The authors' ell = 1 model predicts
C + 1 classes (the mask's among them), so its weights load into a ``PixelUNet`` with
``num_classes`` = C + 1.

Their checkpoints store an EMA wrapper: ``model.<name>`` (the raw weights),
``num_updates`` and ``shadow_params.<i>``, the averaged copy of the i-th parameter in the
order of the model's parameters (= the order of its ``model.*`` keys: the U-Net has no
buffers); :func:`unwrap_ema` picks either set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

__all__ = ["authors_key", "from_authors", "unwrap_ema"]

_BLOCKS = (
    (re.compile(r"unet\.input_blocks\.(\d+)\.([01])\."), "down", -1),
    (re.compile(r"unet\.output_blocks\.(\d+)\.([01])\."), "up", 0),
)
_INNER = (
    ("emb_layers.embedding_table", "scale_shift"),
    ("skip_connection.", "skip."),
    ("proj_out.", "proj."),
)


def authors_key(name: str) -> str:
    """The ``PixelUNet`` parameter name of the authors' parameter ``name``."""
    if name == "pixel_embedding.embedding_table.weight":
        return "embed.weight"
    for pattern, path, shift in _BLOCKS:
        match = pattern.match(name)
        if match:
            index = int(match[1]) + shift
            part = "res" if match[2] == "0" else "attn"
            rest = f"{path}.{index}.{part}.{name[match.end() :]}"
            break
    else:
        for prefix, new in (("unet.middle_block.", "middle."), ("unet.out.", "out.")):
            if name.startswith(prefix):
                rest = new + name[len(prefix) :]
                break
        else:
            raise ValueError(
                f"authors' U-Net key {name!r}: expected pixel_embedding.*, "
                "unet.input_blocks.{n>=1}.*, unet.middle_block.*, unet.output_blocks.*"
                " or unet.out.*"
            )
    if rest.startswith("down.-1."):
        raise ValueError(
            f"authors' U-Net key {name!r}: input_blocks.0 has parameters only with an "
            "input projection, which PixelUNet does not have"
        )
    for old, new in _INNER:
        rest = rest.replace(old, new)
    return rest


def from_authors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' U-Net state dict renamed for ``PixelUNet.load_state_dict``."""
    return {authors_key(name): value for name, value in state.items()}


def unwrap_ema(state: Mapping[str, torch.Tensor], averaged: bool = True) -> dict[str, torch.Tensor]:
    """The model's state dict inside the authors' EMA wrapper's state dict ``state``:
    the averaged weights (``averaged``) or the raw ones."""
    names = [k[len("model.") :] for k in state if k.startswith("model.")]
    if not names:
        raise ValueError("EMA state dict: no 'model.*' keys (is it the authors' EMA wrapper?)")
    if not averaged:
        return {name: state[f"model.{name}"] for name in names}
    shadows = sum(k.startswith("shadow_params.") for k in state)
    if shadows != len(names):
        raise ValueError(
            f"EMA state dict: {shadows} shadow_params for {len(names)} model parameters; "
            "expected one per parameter"
        )
    return {name: state[f"shadow_params.{i}"] for i, name in enumerate(names)}
