"""Read a PyTorch Lightning checkpoint of the MDM-Prime / MDLM text code without its code.

What Lightning (2.x) writes for their ``Diffusion`` module, and what is read here:

    state_dict         OrderedDict "backbone.<name>" -> tensor: the network's parameters
                       and persistent buffers in module order (their metrics keep no
                       persistent state, their noise schedule holds no tensors)
    ema                their ExponentialMovingAverage.state_dict(): {"decay", "num_updates",
                       "shadow_params"}; shadow_params is a list, one tensor per parameter
                       of chain(backbone.parameters(), noise.parameters()) that requires
                       grad, in that order, i.e. the state_dict's parameters in its order
    hyper_parameters   {"config": their OmegaConf config, "tokenizer": ...}
    global_step, epoch, pytorch-lightning_version  (loops, optimizer_states, ... unread)

The file is unpickled by :func:`read_foreign_checkpoint`, so OmegaConf nodes arrive as
inert records; :func:`config_tree` turns them back into plain dicts, lists and values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .foreign_pickle import ForeignCheckpointError, Opaque, opaque_fields, read_foreign_checkpoint
from .mapping import WeightsMismatch

__all__ = ["LightningCheckpoint", "config_tree", "read_lightning_checkpoint"]


def config_tree(obj: Any) -> Any:
    """Plain dicts / lists / values of an OmegaConf config read as :class:`Opaque` records
    (a container keeps its children in ``_content``, a leaf node its value in ``_val``;
    interpolations stay the strings they were written as). Plain containers pass through."""
    if isinstance(obj, Opaque):
        try:
            fields = opaque_fields(obj)
        except ForeignCheckpointError:
            return obj
        if "_content" in fields:
            return config_tree(fields["_content"])
        if "_val" in fields:
            return config_tree(fields["_val"])
        return obj
    if isinstance(obj, dict):
        return {key: config_tree(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [config_tree(value) for value in obj]
    return obj


@dataclass(frozen=True)
class LightningCheckpoint:
    """The parts of a text checkpoint the loaders use.

    ``network``: the ``backbone.*`` entries of ``state_dict`` without the prefix, in file
    order; ``ema``: the EMA record or None; ``config``: the training config as plain data.
    """

    path: Path
    network: dict[str, torch.Tensor]
    ema: dict[str, Any] | None
    config: dict[str, Any]
    global_step: int | None
    epoch: int | None
    lightning_version: str | None

    def field(self, dotted: str) -> Any:
        """The config value at ``dotted`` (e.g. "prime.target_length"); WeightsMismatch
        naming the file and the field when it is absent or an unresolved interpolation."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise WeightsMismatch(f"{self.path}: the stored config has no field {dotted}")
            node = node[part]
        if isinstance(node, str) and node.startswith("${"):
            raise WeightsMismatch(
                f"{self.path}: config field {dotted} is an unresolved interpolation {node!r}"
            )
        return node

    def shadow_weights(self, buffers: Iterable[str]) -> dict[str, torch.Tensor]:
        """The EMA's shadow copy as a state dict named like ``network``: the i-th shadow
        tensor is the i-th entry of ``network`` that is not one of ``buffers``; the
        buffers are taken from ``network``. WeightsMismatch if the counts or shapes differ."""
        if self.ema is None:
            raise WeightsMismatch(f"{self.path}: the checkpoint has no 'ema' entry")
        shadows = self.ema.get("shadow_params")
        buffers = set(buffers)
        names = [name for name in self.network if name not in buffers]
        if not isinstance(shadows, list) or len(shadows) != len(names):
            count = len(shadows) if isinstance(shadows, list) else type(shadows).__name__
            raise WeightsMismatch(
                f"{self.path}: ema.shadow_params holds {count} tensors, but state_dict has "
                f"{len(names)} backbone parameters (the EMA follows their order)"
            )
        out = dict(self.network)
        for name, shadow in zip(names, shadows, strict=True):
            if tuple(shadow.shape) != tuple(self.network[name].shape):
                raise WeightsMismatch(
                    f"{self.path}: ema.shadow_params entry for {name} has shape "
                    f"{tuple(shadow.shape)}, the weight {tuple(self.network[name].shape)}"
                )
            out[name] = shadow
        return out

    def ema_summary(self) -> str:
        """decay and number of updates of the EMA record, for the run's parameters."""
        if self.ema is None:
            return "none"
        return f"decay {self.ema.get('decay')}, {self.ema.get('num_updates')} updates"


def _config_of(hyper_parameters: Any, path: Path) -> dict[str, Any]:
    tree = config_tree(hyper_parameters)
    if isinstance(tree, dict) and isinstance(tree.get("config"), dict):
        tree = tree["config"]  # save_hyperparameters() of (config, tokenizer)
    if not isinstance(tree, dict) or "model" not in tree:
        raise WeightsMismatch(
            f"{path}: hyper_parameters holds no training config (expected a 'config' with "
            "'model' and 'prime' sections)"
        )
    return tree


def read_lightning_checkpoint(path: str | Path, prefix: str = "backbone.") -> LightningCheckpoint:
    """Read ``path`` (no code of the file runs); WeightsMismatch naming the file when it is
    not a Lightning checkpoint of a module with a ``prefix`` network."""
    path = Path(path)
    ckpt = read_foreign_checkpoint(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise WeightsMismatch(f"{path}: not a Lightning checkpoint (no 'state_dict' entry)")
    network = {
        key[len(prefix) :]: value
        for key, value in ckpt["state_dict"].items()
        if key.startswith(prefix) and isinstance(value, torch.Tensor)
    }
    if not network:
        raise WeightsMismatch(f"{path}: state_dict has no '{prefix}*' entries")
    ema = ckpt.get("ema")
    if ema is not None and not isinstance(ema, dict):
        raise WeightsMismatch(f"{path}: 'ema' is a {type(ema).__name__}, expected a dict")
    version = ckpt.get("pytorch-lightning_version")
    return LightningCheckpoint(
        path=path,
        network=network,
        ema=ema,
        config=_config_of(ckpt.get("hyper_parameters"), path),
        global_step=ckpt.get("global_step"),
        epoch=ckpt.get("epoch"),
        lightning_version=version if isinstance(version, str) else None,
    )
