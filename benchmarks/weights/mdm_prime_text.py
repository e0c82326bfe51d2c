"""Load the MDM-Prime authors' released text checkpoints (MDLM, MDLM-Prime, ARM) into the
suite's models.

The files are their Lightning checkpoints (:mod:`.lightning_checkpoint`). Which network a
file holds follows from its stored config, as their ``Diffusion.__init__`` decides it:

    backbone dit, prime.target_length 1  DIT (MDLM): embedding (C + 1, D), head C + 1
    backbone dit, target_length ell > 1  PerceiverDIT (MDLM-Prime): embedding (b + 1, D/ell),
                                         head C; b = ceil(C^(1/ell)), mask sub-token b
    backbone ar                          AR (ARM): embedding and head C + 1, causal

Conventions against the suite's: sub-token digits are most significant first in both
(their ``encoder``: x // b^(ell-1-j) mod b, flattened token-major to (B, L * ell); the
suite's ``SubTokenizer``: (B, L, ell)); their PerceiverDIT concatenates a token's ell
embeddings in that order, as ``SubTokenEmbedding`` does; the mask is row b (row C at
ell = 1) in both. So no row is re-ordered. The one difference: MDLM's head has a mask class
(row C), pushed to -1e6 before their SUBS log-softmax, so its probability is 0; a suite
MDLM head of C outputs takes the C real rows (the log-probabilities of the real classes are
unchanged), one of C + 1 outputs (the cross_entropy_257 objective) takes all.

Their evaluation copies the EMA weights in (``on_validation_epoch_start``; sampling too),
unless ``eval.disable_ema``: so does :func:`load_mdm_prime_text` unless ``ema=False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from baselines.ar import AutoregressiveLM
from baselines.ar_keys import from_arm_names
from baselines.ar_transformer import ARMTransformer
from prime.backbones import DiT
from prime.backbones.dit_keys import ROTARY_BUFFER, from_dit_names
from prime.diffusion import MaskedDiffusion

from .lightning_checkpoint import LightningCheckpoint, read_lightning_checkpoint
from .mapping import WeightsMismatch, load_network

__all__ = ["load_mdm_prime_text"]

FORMAT = "mdm-prime text Lightning checkpoint"


def _check(ckpt: LightningCheckpoint, field: str, model_value: Any, what: str) -> Any:
    """Raise WeightsMismatch unless the stored config's ``field`` equals ``model_value``."""
    file_value = ckpt.field(field)
    if file_value != model_value:
        raise WeightsMismatch(
            f"{ckpt.path}: {field} is {file_value!r} in the checkpoint but {model_value!r} "
            f"in the configured model ({what})"
        )
    return file_value


def _check_vocabulary(ckpt: LightningCheckpoint, num_classes: int) -> None:
    """At ell = 1 the network's size comes from the tokenizer, not prime.vocab_size: read
    C from the embedding's rows (C + 1, the last the mask)."""
    rows = ckpt.network.get("vocab_embed.embedding")
    if rows is None:
        raise WeightsMismatch(f"{ckpt.path}: state_dict has no backbone.vocab_embed.embedding")
    if rows.shape[0] - 1 != num_classes:
        raise WeightsMismatch(
            f"{ckpt.path}: vocabulary size (rows of vocab_embed.embedding - 1, the mask) is "
            f"{rows.shape[0] - 1} in the checkpoint but {num_classes} in the configured model"
        )


def _check_sizes(ckpt: LightningCheckpoint, network: DiT | ARMTransformer) -> None:
    cfg = network.config
    _check(ckpt, "model.hidden_size", cfg.hidden, "hidden width")
    _check(ckpt, "model.n_blocks", cfg.depth, "transformer blocks")
    _check(ckpt, "model.n_heads", cfg.heads, "attention heads")  # no shape shows it
    if isinstance(network, DiT):
        _check(ckpt, "model.cond_dim", cfg.cond_dim, "conditioning width")


def _check_diffusion(ckpt: LightningCheckpoint, model: MaskedDiffusion) -> str:
    codec, network = model.codec, model.network
    _check(ckpt, "backbone", "dit", "a masked diffusion model needs their DiT")
    _check(ckpt, "parameterization", "subs", "the suite's joint decoder is their SUBS")
    if not isinstance(network, DiT):
        raise WeightsMismatch(
            f"{ckpt.path}: the checkpoint holds a DiT; the model's network is "
            f"{type(network).__name__} (configure backbone dit)"
        )
    if model.decoder != "joint":
        raise WeightsMismatch(
            f"{ckpt.path}: their head is one softmax over the C tokens (decoder joint); "
            f"the model's decoder is {model.decoder!r}"
        )
    ell = _check(ckpt, "prime.target_length", codec.ell, "ell, sub-tokens per token")
    if ell == 1:
        _check_vocabulary(ckpt, codec.num_classes)
    else:
        _check(ckpt, "prime.vocab_size", codec.num_classes, "C, token classes")
        _check(ckpt, "prime.base", codec.base, "b, sub-token alphabet")
        _check(ckpt, "prime.carry_over", model.carry_over, "carry-over parameterization")
    _check_sizes(ckpt, network)
    if ckpt.field("time_conditioning"):
        raise WeightsMismatch(
            f"{ckpt.path}: time_conditioning is True in the checkpoint: their DiT takes "
            "sigma(t) = -log(1 - (1 - 1e-3) t), the suite's takes t (not supported)"
        )
    if network.time_conditioned:
        raise WeightsMismatch(
            f"{ckpt.path}: time_conditioning is False in the checkpoint but the model's "
            "DiT is time-conditioned"
        )
    if ell == 1:
        return f"DIT (MDLM), C = {codec.num_classes}"
    return f"PerceiverDIT (MDLM-Prime), ell = {ell}, b = {codec.base}, C = {codec.num_classes}"


def _check_autoregressive(ckpt: LightningCheckpoint, model: AutoregressiveLM) -> str:
    _check(ckpt, "backbone", "ar", "the autoregressive model needs their ARM")
    if not isinstance(model.network, ARMTransformer):
        raise WeightsMismatch(
            f"{ckpt.path}: the checkpoint holds the authors' ARM; the model's network is "
            f"{type(model.network).__name__} (configure backbone arm)"
        )
    _check(ckpt, "prime.target_length", 1, "the suite's ARM predicts whole tokens")
    _check_vocabulary(ckpt, model.num_classes)
    _check_sizes(ckpt, model.network)
    return f"AR (ARM), C = {model.num_classes}"


def _drop_mask_class(state: dict[str, torch.Tensor], num_classes: int) -> None:
    """MDLM's head rows 0..C-1 (the real classes) for a suite head of C outputs."""
    for name in ("head.weight", "head.bias"):
        if name in state and state[name].shape[0] == num_classes + 1:
            state[name] = state[name][:num_classes]


def load_mdm_prime_text(
    model: MaskedDiffusion | AutoregressiveLM, path: str | Path, *, ema: bool = True
) -> dict[str, str]:
    """Load the text checkpoint ``path`` into ``model.network``; returns what to record
    on the run ("weights.*" -> short text).

    Takes the EMA shadow weights when the file has them and ``ema`` (as their evaluation
    does), else the raw weights. Raises :class:`WeightsMismatch` naming the file and the
    field, with both values, when the stored config disagrees with the model (kind of
    model, ell, vocabulary, b, carry-over, sizes, heads, time conditioning), and naming
    the tensors when names or shapes do not fit.
    """
    ckpt = read_lightning_checkpoint(path)
    if isinstance(model, AutoregressiveLM):
        described = _check_autoregressive(ckpt, model)
    elif isinstance(model, MaskedDiffusion):
        described = _check_diffusion(ckpt, model)
    else:
        raise WeightsMismatch(
            f"{ckpt.path}: the checkpoint is for MDLM, MDLM-Prime or the ARM; the model is "
            f"a {type(model).__name__}"
        )
    if ema and ckpt.ema is not None:
        state = ckpt.shadow_weights(buffers=[ROTARY_BUFFER])
        weights = f"EMA shadow weights ({ckpt.ema_summary()}), as their evaluation uses"
    else:
        state = dict(ckpt.network)
        weights = "raw weights (" + ("EMA not asked for)" if not ema else "the file has no EMA)")
    network = model.network
    head_dim = network.config.hidden // network.config.heads
    try:
        if isinstance(network, ARMTransformer):
            state = from_arm_names(state, head_dim)
        else:
            state = from_dit_names(state, head_dim)
    except (KeyError, ValueError) as err:
        raise WeightsMismatch(f"{ckpt.path}: {err}") from None
    head = "all rows"
    if isinstance(network, DiT) and model.codec.ell == 1:
        if network.head.out_features == model.codec.num_classes:
            _drop_mask_class(state, model.codec.num_classes)
            head = "C real classes (mask class row C dropped: their SUBS gives it probability 0)"
    load_network(network, state, str(ckpt.path))
    version = f" (pytorch-lightning {ckpt.lightning_version})" if ckpt.lightning_version else ""
    return {
        "weights.format": FORMAT + version,
        "weights.network": described,
        "weights.ema": weights,
        "weights.head": head,
        "weights.global_step": str(ckpt.global_step),
        "weights.epoch": str(ckpt.epoch),
    }
