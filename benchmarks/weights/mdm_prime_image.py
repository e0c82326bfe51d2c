"""The MDM-Prime image code's checkpoints (``checkpoint-<epoch>.pth``) -> the suite's image
models (``prime``, ``mdm``, ``mdm-mixture`` with the ``unet`` backbone).

Layout of a file their ``save_model`` writes (``image/utils/load_and_save.py``)::

    {"model": state dict of the trained module, "optimizer", "lr_schedule",
     "epoch": the 0-based epoch just finished (checkpoint-4249.pth: 4250 epochs trained),
     "scaler", "args": the run's argparse.Namespace}

With ``--use_ema`` (every command line of their README) the module is their EMA wrapper:
``model.<name>`` holds the raw weights, ``shadow_params.<i>`` the average of the i-th
parameter, ``num_updates`` the number of averaging steps. Their ``eval.py`` rebuilds the
wrapper, loads the state and calls ``.train(False)``, which copies the shadow weights into
the network: their samples and likelihoods come from the averaged weights, and so do the
weights loaded here. A file without ``shadow_params`` (a run without ``--use_ema``) holds
the bare network, whose weights are then the ones evaluated.

The network is a renaming away from :class:`~prime.backbones.PixelUNet`
(:mod:`prime.backbones.unet_keys`). Conventions checked against ``args`` because the
weights' shapes do not show them:

* ``target_length`` is ell and ``base`` = ceil(C^(1/ell)) is b (mask id b); the suite's
  codec must have the same ell, b and C = ``vocab_size``;
* the ell = 1 network has 257 outputs, C values + the mask class (their
  ``instantiate_model`` fixes it), so the suite's MDM needs a C + 1 head
  (objective ``cross_entropy_257``); for ell > 1 it has C outputs (the joint decoder);
* ``seq_length`` = channels x H x W: the U-Net's weights fit any image size;
* ``schedule_n``: the training schedule alpha = (1 - t)^n (their s^n, s = 1 - t);
* ``use_uniform_mixture`` / ``mixture_classes``: MDM-Mixture; their U-Net is built
  without classes, so it never reads the label (the suite's ``label_input: none``);
* ``super_token`` runs (a 4096-class pair of sub-tokens per 3 values) are refused: the
  suite has no super-token model;
* the head width (their ``num_head_channels`` 64) is in their code, not in the file, and
  splitting attention into other heads changes the outputs without changing any shape:
  it is compared with the network's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from baselines import LabelMixture
from prime.backbones import PixelUNet
from prime.backbones.unet_keys import from_authors, unwrap_ema
from prime.schedules import PolynomialSchedule

from .foreign_pickle import ForeignCheckpointError, opaque_fields, read_foreign_checkpoint
from .mapping import WeightsMismatch, load_network

__all__ = ["load_mdm_prime_image", "AUTHORS_HEAD_DIM", "DATASETS"]

AUTHORS_HEAD_DIM = 64  # MODEL_CONFIGS["model_discrete"]["num_head_channels"]
DATASETS = {"cifar10": "cifar10", "imagenet32": "imagenet"}  # the suite's name -> theirs


def _fields(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint, its args' fields); WeightsMismatch when it is not their layout."""
    try:
        ckpt = read_foreign_checkpoint(path)
    except ForeignCheckpointError as err:
        raise WeightsMismatch(str(err)) from None
    if not isinstance(ckpt, dict) or not {"model", "args", "epoch"} <= set(ckpt):
        found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise WeightsMismatch(
            f"{path}: not an MDM-Prime image checkpoint (expected a dict with 'model', "
            f"'epoch' and 'args', as their save_model writes; found {found})"
        )
    try:
        return ckpt, opaque_fields(ckpt["args"])
    except ForeignCheckpointError as err:
        raise WeightsMismatch(f"{path}: 'args': {err}") from None


def _arg(fields: dict[str, Any], name: str, path: Path) -> Any:
    if name not in fields:
        raise WeightsMismatch(f"{path}: args has no field {name!r} (their arg_parser defines it)")
    return fields[name]


def _differ(path: Path, field: str, theirs: Any, ours: Any, hint: str = "") -> WeightsMismatch:
    return WeightsMismatch(
        f"{path}: args.{field} = {theirs!r} in the file, but the model has {ours!r}{hint}"
    )


def _unet(model: nn.Module, path: Path) -> tuple[PixelUNet, LabelMixture | None]:
    network = getattr(model, "network", None)
    mixture = network if isinstance(network, LabelMixture) else None
    if mixture is not None:
        network = mixture.network
    if not isinstance(network, PixelUNet) or not hasattr(model, "codec"):
        raise WeightsMismatch(
            f"{path}: an image U-Net checkpoint; the model's network is "
            f"{type(network).__name__} (configure model.backbone.name: unet)"
        )
    return network, mixture


def _check(
    model: nn.Module,
    net: PixelUNet,
    mixture: LabelMixture | None,
    args: dict[str, Any],
    path: Path,
    dataset: str | None,
    head_dim: int,
) -> None:
    if _arg(args, "super_token", path):
        raise WeightsMismatch(
            f"{path}: args.super_token = True: a super-token run (pairs of 4096-class "
            "sub-tokens per 3 pixel values); the suite has no super-token model to load it into"
        )
    codec = model.codec
    ell, base, classes = (_arg(args, k, path) for k in ("target_length", "base", "vocab_size"))
    if ell != codec.ell:
        raise _differ(path, "target_length", ell, codec.ell, " as ell (sub-tokens per pixel value)")
    if classes != codec.num_classes:
        raise _differ(path, "vocab_size", classes, codec.num_classes, " classes per token (C)")
    if base != codec.base:
        raise _differ(path, "base", base, codec.base, " as the sub-token base b")
    if getattr(model, "decoder", "joint") != "joint":
        raise WeightsMismatch(
            f"{path}: their network is the joint decoder's (C logits per token); "
            f"the model's decoder is {model.decoder!r}"
        )
    outputs = 257 if ell == 1 else classes  # their instantiate_model: vocab_size=257
    if net.num_classes != outputs:
        hint = " (objective cross_entropy_257: C + 1 outputs)" if ell == 1 else ""
        raise WeightsMismatch(
            f"{path}: the authors' ell = {ell} network has {outputs} outputs per token, the "
            f"model's U-Net {net.num_classes}{hint}"
        )
    tokens = net.channels * net.size * net.size
    if _arg(args, "seq_length", path) != tokens:
        raise _differ(path, "seq_length", args["seq_length"], tokens, " tokens (channels x H x W)")
    if dataset is not None and DATASETS.get(dataset, dataset) != _arg(args, "dataset", path):
        raise _differ(path, "dataset", args["dataset"], DATASETS.get(dataset, dataset))
    n = float(_arg(args, "schedule_n", path))
    schedule = model.schedule
    if not isinstance(schedule, PolynomialSchedule) or float(schedule.n) != n:
        ours = f"polynomial n={schedule.n}" if isinstance(schedule, PolynomialSchedule) else None
        raise _differ(path, "schedule_n", n, ours or schedule.name, " (alpha_t = (1 - t)^n)")
    _check_mixture(mixture, args, path)
    widths = {m.qkv.in_channels // m.heads for m in net.modules() if hasattr(m, "heads")}
    if widths - {head_dim}:
        raise WeightsMismatch(
            f"{path}: the authors' attention heads are {head_dim} wide (their "
            f"num_head_channels); the model's U-Net has head width {sorted(widths)}"
        )


def _check_mixture(mixture: LabelMixture | None, args: dict[str, Any], path: Path) -> None:
    theirs = bool(_arg(args, "use_uniform_mixture", path))
    if theirs != (mixture is not None):
        raise _differ(path, "use_uniform_mixture", theirs, mixture is not None, " (mdm-mixture)")
    if mixture is None:
        return
    if mixture.label_input:
        raise WeightsMismatch(
            f"{path}: their U-Net has no label input (built without classes); configure "
            "the mdm-mixture model with label_input: none"
        )
    if _arg(args, "mixture_classes", path) != mixture.num_labels:
        raise _differ(path, "mixture_classes", args["mixture_classes"], mixture.num_labels)


def load_mdm_prime_image(
    model: nn.Module,
    path: Path,
    *,
    dataset: str | None = None,
    head_dim: int = AUTHORS_HEAD_DIM,
) -> dict[str, str]:
    """Load the authors' image checkpoint ``path`` into ``model``'s U-Net, in place.

    ``model`` is a :class:`prime.MaskedDiffusion` whose ``network`` is a ``PixelUNet``
    (or a ``LabelMixture`` around one); ``dataset``: the task's dataset (cifar10 /
    imagenet32), checked against the file's when given; ``head_dim``: the attention head
    width the file's network was built with. Loads the EMA shadow weights when the file
    has them (what their evaluation samples with), else the bare network's. Raises
    :class:`WeightsMismatch` naming the file (and the ``args`` field, with both values)
    when the checkpoint does not fit. Returns short strings to record on the run.
    """
    path = Path(path)
    net, mixture = _unet(model, path)
    ckpt, args = _fields(path)
    _check(model, net, mixture, args, path, dataset, head_dim)
    state = ckpt["model"]
    if not isinstance(state, dict):
        raise WeightsMismatch(f"{path}: 'model' is {type(state).__name__}, expected a state dict")
    # Nothing is written into the network before every check has passed.
    wrapped = any(k.startswith("shadow_params.") for k in state)
    if _arg(args, "use_ema", path) and not wrapped:
        raise WeightsMismatch(
            f"{path}: args.use_ema = True but the state has no shadow_params "
            "(their EMA wrapper's averaged weights)"
        )
    try:
        weights = unwrap_ema(state) if wrapped else dict(state)
        renamed = from_authors(weights)
    except ValueError as err:
        raise WeightsMismatch(f"{path}: {err}") from None
    load_network(net, renamed, str(path))
    if wrapped:
        updates = state.get("num_updates")
        count = int(updates) if isinstance(updates, torch.Tensor) else "?"
        ema = f"shadow_params (EMA, num_updates {count}), as their eval.py"
    else:
        ema = "none: the raw weights (run without --use_ema)"
    epoch = ckpt["epoch"]
    if not isinstance(epoch, int):
        raise WeightsMismatch(f"{path}: 'epoch' is {epoch!r}, expected an int")
    # The sampling settings are the training command line's (its periodic FID runs), not
    # necessarily the README table's best ones for this checkpoint.
    return {
        "weights.format": "mdm-prime image checkpoint",
        "weights.epoch": f"{epoch} (0-based; {epoch + 1} epochs trained)",
        "weights.ema": ema,
        "weights.run": (
            f"dataset={args.get('dataset')} target_length={args['target_length']} "
            f"base={args['base']} vocab_size={args['vocab_size']} "
            f"seq_length={args['seq_length']} schedule_n={args['schedule_n']} "
            f"mixture={args['use_uniform_mixture']}"
        ),
        "weights.run_sampling": (
            f"carry_over={args.get('carry_over')} nfe={args.get('nfe')} "
            f"temperature={args.get('temperature_parameters')} "
            f"corrector={args.get('corrector_parameters')} "
            f"timestep={args.get('timestep_parameters')}"
        ),
        "weights.parameters": str(sum(v.numel() for v in renamed.values())),
    }
