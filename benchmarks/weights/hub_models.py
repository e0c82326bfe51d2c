"""Released hub-format text models -> the suite's networks: MDLM (``mdlm-owt``) and
BD3-LM (``bd3lm-owt-block_size{4,8,16}``).

A hub snapshot directory holds ``config.json`` (the model's ``transformers`` config) and
``model.safetensors``, whose keys are

    backbone.<name in MDLM's DiT>          every weight, and the rotary buffer
                                           ``backbone.rotary_emb.inv_freq``
    sampling_eps_min, sampling_eps_max     BD3-LM (``var_min``): the clipped training
                                           window [beta, omega], scalars

(the MDLM-DiT names are renamed by :mod:`prime.backbones.dit_keys`). config.json fields
read: vocab_size (C + 1), hidden_dim, n_blocks, n_heads, cond_dim, model_length, dropout,
time_conditioning; BD3-LM also block_size, cross_attn, adaln, causal, attn_backend
(absent flags take the defaults of bd3lms's ``BD3LMConfig``: true, true, false, flex).

Conventions, each mapped exactly:

* Vocabulary: C + 1 embedding rows, row C the mask (the mask index is the tokenizer's
  size C); the suite's mask id at ell = 1 is C too. Loaded as is.
* Head: C + 1 logits, the last the mask class, to which the SUBS parameterization adds
  -1e6 before the log-softmax (``_subs_parameterization`` of mdlm's and bd3lms's
  ``diffusion.py``): it carries no probability, and dropping its row leaves the
  distribution over the C tokens unchanged. A C-output head gets rows 0..C-1; a
  mask-class head (C + 1 outputs, :mod:`prime.mask_class`) keeps every row.
* Time: without time conditioning both feed 0 to the timestep MLP. With it MDLM feeds
  sigma(t) = -log alpha_t where the suite feeds t, so such files are refused.
* BD3-LM: the network reads x_t next to x_0 (2L positions, each half at positions
  0..L-1) under the block-diffusion mask and returns the x_t half's logits, as
  :meth:`baselines.BlockDiffusion.predict` does. Their mask is built for
  L = model_length, the only length at which their network runs that pass.
* The rotary buffer is checked (base 10,000), not loaded. The window buffers are
  recorded, not applied: bd3lms re-registers them from its own config when it starts
  from hub weights (``main.py``), and evaluation uses the full window anyway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from prime.backbones import DiT
from prime.backbones.dit_keys import ROTARY_BUFFER, from_dit_names

from .mapping import WeightsMismatch, load_network

__all__ = [
    "read_hub_snapshot",
    "check_hub_config",
    "hub_network_state",
    "load_hub_mdlm",
    "load_hub_bd3lm",
]

PREFIX = "backbone."
WINDOW_KEYS = ("sampling_eps_min", "sampling_eps_max")
_MLP_RATIO = 4  # fixed in the authors' blocks: hidden -> 4 hidden -> hidden
_SIZES = ("vocab_size", "hidden_dim", "n_blocks", "n_heads", "cond_dim", "model_length")


def read_hub_snapshot(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config.json as a dict, the tensors of ``path``) of the snapshot holding ``path``."""
    path = Path(path)
    config_path = path.with_name("config.json")
    for needed in (path, config_path):
        if not needed.is_file():
            raise FileNotFoundError(
                f"{needed}: not found (a hub snapshot keeps config.json beside "
                f"model.safetensors in one directory)"
            )
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise WeightsMismatch(f"{config_path}: not a JSON file ({err})") from None
    if not isinstance(config, dict):
        raise WeightsMismatch(f"{config_path}: expected a JSON object of config fields")
    try:
        state = load_file(str(path))
    except SafetensorError as err:
        raise WeightsMismatch(f"{path}: not a safetensors file ({err})") from None
    return config, state


def _required(config: dict[str, Any], name: str, source: str) -> Any:
    if name not in config:
        raise WeightsMismatch(f"{source}: config.json has no {name!r} field")
    return config[name]


def _compare(source: str, rows: list[tuple[str, Any, Any, str]]) -> None:
    """Raise WeightsMismatch listing each (field, file value, suite value, meaning) that differs."""
    bad = [
        f"{field} = {file!r} in config.json, but the suite's model has {suite!r} ({meaning})"
        for field, file, suite, meaning in rows
        if file != suite
    ]
    if bad:
        raise WeightsMismatch(f"{source}: " + "; ".join(bad))


def _check_dit(model: nn.Module, config: dict[str, Any], kind: str, source: str) -> DiT:
    """The model's DiT, after checking the sizes of config.json against it."""
    model_type = config.get("model_type")
    if model_type != kind:
        raise WeightsMismatch(f"{source}: model_type = {model_type!r}, expected {kind!r}")
    for name in _SIZES:
        _required(config, name, source)
    network = getattr(model, "network", None)
    if not isinstance(network, DiT):
        raise WeightsMismatch(
            f"{source}: the released network is a DiT; the model's is {type(network).__name__}"
        )
    codec, cfg = model.codec, network.config
    if codec.ell != 1:
        raise WeightsMismatch(
            f"{source}: the released model is over whole tokens (ell = 1); the model has "
            f"ell = {codec.ell}"
        )
    _compare(
        source,
        [
            ("vocab_size", config["vocab_size"], codec.num_classes + 1, "C classes + the mask"),
            ("hidden_dim", config["hidden_dim"], cfg.hidden, "width"),
            ("n_blocks", config["n_blocks"], cfg.depth, "transformer blocks"),
            ("n_heads", config["n_heads"], cfg.heads, "attention heads"),
            ("cond_dim", config["cond_dim"], cfg.cond_dim, "conditioning width"),
            (
                "time_conditioning",
                bool(config.get("time_conditioning", False)),
                network.time_conditioned,
                "t fed to the adaLN conditioning",
            ),
        ],
    )
    if cfg.mlp_ratio != _MLP_RATIO:
        raise WeightsMismatch(
            f"{source}: the released blocks have MLP ratio {_MLP_RATIO} (fixed in their code); "
            f"the suite's model has {cfg.mlp_ratio}"
        )
    if network.time_conditioned:
        raise WeightsMismatch(
            f"{source}: time_conditioning = true: the released DiT is conditioned on "
            f"sigma(t) = -log alpha_t, the suite's on t; only time_conditioning = false loads"
        )
    return network


def _check_block_diffusion(
    model: nn.Module, config: dict[str, Any], source: str, seq_len: int | None
) -> None:
    block = getattr(model, "block_size", None)
    if block is None:
        raise WeightsMismatch(f"{source}: a BD3-LM file needs a block-diffusion model")
    backend = config.get("attn_backend", "flex")
    if backend not in ("flex", "sdpa"):
        raise WeightsMismatch(
            f"{source}: attn_backend = {backend!r}, expected 'flex' or 'sdpa' (two ways of "
            f"applying the same block-diffusion mask)"
        )
    rows = [
        ("block_size", _required(config, "block_size", source), block, "tokens per block"),
        ("cross_attn", config.get("cross_attn", True), True, "x_t read next to x_0"),
        ("adaln", config.get("adaln", True), True, "adaLN-modulated blocks"),
        ("causal", config.get("causal", False), False, "the block-diffusion mask"),
    ]
    if seq_len is not None:
        rows.append(("model_length", config["model_length"], seq_len, "the sequence length"))
    _compare(source, rows)


def check_hub_config(
    model: nn.Module,
    config: dict[str, Any],
    kind: str,
    source: str,
    seq_len: int | None = None,
) -> DiT:
    """The model's DiT, after checking config.json (``config``, named ``source`` in
    errors) of a hub model of ``kind`` ("mdlm" or "bd3lm") against ``model``: sizes, time
    conditioning, and for BD3-LM the block size, attention flags and (``seq_len`` given)
    the length. WeightsMismatch naming each field that differs, with both values."""
    network = _check_dit(model, config, kind, source)
    if kind == "bd3lm":
        _check_block_diffusion(model, config, source, seq_len)
    return network


def hub_network_state(
    model: nn.Module,
    network: DiT,
    state: dict[str, torch.Tensor],
    path: Path | str,
    extra: tuple[str, ...] = (),
) -> tuple[dict[str, torch.Tensor], str]:
    """(the file's ``backbone.*`` tensors under ``network``'s names, what was done with the
    mask-class row): renamed, the rotary buffer checked and dropped, the mask row dropped
    for a C-output head. ``extra``: keys outside ``backbone.`` the file may hold."""
    outside = sorted(k for k in state if not k.startswith(PREFIX) and k not in extra)
    if outside:
        raise WeightsMismatch(f"{path}: unexpected keys outside {PREFIX!r}: {outside[:8]}")
    inner = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    cfg = network.config
    try:
        renamed = from_dit_names(inner, head_dim=cfg.hidden // cfg.heads)
    except KeyError as err:
        raise WeightsMismatch(f"{path}: {err.args[0]}") from None
    except ValueError as err:
        raise WeightsMismatch(f"{path}: {err}") from None
    classes = model.codec.num_classes
    head = renamed.get("head.weight")
    mask_class = f"all {classes + 1} head rows kept (a mask-class head)"
    if network.head.out_features == classes and head is not None and len(head) == classes + 1:
        renamed["head.weight"] = head[:classes]
        renamed["head.bias"] = renamed["head.bias"][:classes]
        mask_class = f"head row {classes} (the mask class, no probability under SUBS) dropped"
    return renamed, mask_class


def _load(
    model: nn.Module,
    network: DiT,
    state: dict[str, torch.Tensor],
    path: Path,
    extra: tuple[str, ...],
) -> dict[str, str]:
    """Rename ``backbone.*``, drop the mask-class row for a C-output head, load strictly."""
    renamed, mask_class = hub_network_state(model, network, state, path, extra)
    load_network(network, renamed, str(path))
    inner = {k[len(PREFIX) :] for k in state if k.startswith(PREFIX)}
    rotary = "checked: base 10000" if ROTARY_BUFFER in inner else "absent from the file"
    return {
        "weights.keys": f"{PREFIX}* ({len(inner)} tensors); rotary buffer {rotary}",
        "weights.mask_class": mask_class,
    }


def _summary(config: dict[str, Any], names: tuple[str, ...]) -> str:
    return " ".join(f"{name}={config.get(name)}" for name in names)


def load_hub_mdlm(model: nn.Module, path: Path) -> dict[str, str]:
    """Load MDLM's hub model (``path``: its model.safetensors) into ``model`` (a
    :class:`prime.MaskedDiffusion` with ell = 1 and a DiT); returns strings to record."""
    path = Path(path)
    config, state = read_hub_snapshot(path)
    network = check_hub_config(model, config, "mdlm", str(path.with_name("config.json")))
    record = _load(model, network, state, path, extra=())
    names = _SIZES + ("dropout", "time_conditioning")
    return {
        "weights.format": "hub transformers model (MDLM)",
        "weights.config": _summary(config, names),
        **record,
    }


def load_hub_bd3lm(model: nn.Module, path: Path, *, seq_len: int | None = None) -> dict[str, str]:
    """Load a BD3-LM hub model (``path``: its model.safetensors) into ``model`` (the
    suite's block diffusion with ell = 1 and a DiT); ``seq_len``, when given, must be the
    file's model_length (the length their block-diffusion pass is defined for)."""
    path = Path(path)
    config, state = read_hub_snapshot(path)
    source = str(path.with_name("config.json"))
    network = check_hub_config(model, config, "bd3lm", source, seq_len)
    block, backend = model.block_size, config.get("attn_backend", "flex")
    record = _load(model, network, state, path, extra=WINDOW_KEYS)
    window = " ".join(f"{key}={float(state[key]):.6g}" for key in WINDOW_KEYS if key in state)
    names = _SIZES + ("block_size", "dropout", "time_conditioning", "attn_backend")
    return {
        "weights.format": "hub transformers model (BD3-LM)",
        "weights.config": _summary(config, names),
        "weights.block_size": str(block),
        "weights.attention": (
            f"x_t next to x_0 (2 x {config['model_length']} positions), block-diffusion "
            f"mask; file attn_backend={backend}"
        ),
        "weights.window": f"{window or 'none stored'} (recorded, not applied)",
        **record,
    }
