"""Every released checkpoint that the paper-scale experiments evaluate fits the suite's
paper-size model of its variant: tensor names, shapes, and the stored settings the loaders
check (vocabulary, ell, b, sizes, heads, EMA list, image args, hub config.json).

The fixture (tests/fixtures/make_released_layouts.py) records each file's layout as the
authors' code builds the network at paper size. The torch formats are written as real
checkpoint files whose tensors are expanded zero views (torch.save stores one element per
tensor, so a 170M-parameter file takes a few kilobytes) and loaded through
:func:`released_model`, the download replaced by the file. The raw weights are zeros and
the EMA shadow weights ones, so a network whose every parameter is 1 afterwards took each
of them from the file's averaged copy, as the authors' evaluation does. Hub files
(safetensors holds no views) are checked by the loader's own config check, renaming and
strict name-and-shape check against the model built on the meta device.
"""

from __future__ import annotations

import argparse
import gc
import json
import lzma
from collections import OrderedDict
from functools import cache
from pathlib import Path

import pytest
import torch

from benchmarks.config.run_config import RunConfig
from benchmarks.launch.plan import plan_experiments
from benchmarks.registry import MODELS, TASKS
from benchmarks.weights import released
from benchmarks.weights.hub import FetchedWeights
from benchmarks.weights.hub_models import WINDOW_KEYS, check_hub_config, hub_network_state
from benchmarks.weights.mapping import WeightsMismatch, load_network
from tests.paths import FIXTURES

FIXTURE = FIXTURES / "released_layouts.json.xz"
EXPERIMENTS = ["table1", "table1-hybrid", "ell-sweep"]
TORCH_FORMATS = ("mdm-prime-text", "mdm-prime-image")


@cache
def _layouts() -> dict:
    return json.loads(lzma.decompress(FIXTURE.read_bytes()))


@cache
def _released() -> dict[str, RunConfig]:
    """``experiment/variant`` -> resolved run, for every run of the released plan."""
    plan = plan_experiments(EXPERIMENTS, "paper", reproduction=False, weights="released")
    return {f"{c.experiment}/{c.variant}": c for item in plan for c in item.configs}


def _recorded(fmt: str) -> int:
    """Released files of format ``fmt`` in the fixture."""
    return sum(entry["format"] == fmt for entry in _layouts()["files"].values())


def _key(config: RunConfig) -> str:
    return f"{config.weights.repo}/{config.weights.file}"


def _layout(config: RunConfig) -> dict:
    return _layouts()["files"][_key(config)]


def _tensor(shape: list[int], dtype: str, values=None, fill: float = 0.0) -> torch.Tensor:
    """The recorded buffer values, else a view of one element expanded to ``shape``."""
    kind = getattr(torch, dtype)
    if values is not None:
        return torch.tensor(values, dtype=kind)
    return torch.full((), fill, dtype=kind).expand(shape)


def _text_file(layout: dict, path: Path) -> None:
    """A Lightning checkpoint as their text code writes it: backbone.* raw weights
    (zeros), the EMA record with shadow weights of ones, the OmegaConf config."""
    omegaconf = pytest.importorskip("omegaconf", reason="the stored config is an OmegaConf one")
    settings = layout["settings"]
    config = omegaconf.OmegaConf.create(settings["config"])
    state = OrderedDict((name, _tensor(*rest)) for name, *rest in layout["tensors"])
    shadows = [_tensor(shape, dtype, fill=1.0) for shape, dtype in layout["ema_shadow"]]
    torch.save(
        {
            "state_dict": state,
            "ema": {**settings["ema"], "shadow_params": shadows},
            "hyper_parameters": {"config": config},  # beside their tokenizer, unread
            "global_step": settings["config"]["trainer"]["max_steps"],
            "epoch": 0,
        },
        path,
    )


def _image_file(layout: dict, path: Path) -> None:
    """A .pth as their save_model writes it: the EMA wrapper's state (raw weights zeros,
    shadow_params ones), the epoch and the run's argparse.Namespace."""
    state = OrderedDict()
    for name, shape, dtype, values in layout["tensors"]:
        fill = 1.0 if name.startswith("shadow_params.") else 0.0
        state[name] = _tensor(shape, dtype, values, fill)
    settings = layout["settings"]
    torch.save(
        {
            "model": state,
            "optimizer": {"state": {}, "param_groups": []},  # unread by the loader
            "lr_schedule": {},
            "epoch": settings["epoch"],
            "scaler": {},
            "args": argparse.Namespace(**settings["args"]),
        },
        path,
    )


def _fetched(path: Path):
    def fetch(repo, file, revision="main", **_):
        origin = f"{repo}/{file}@{revision}"
        return FetchedWeights(path, "0" * 64, path.stat().st_size, origin, None)

    return fetch


def _meta_model(config: RunConfig) -> tuple[torch.nn.Module, dict]:
    """The variant's model as released_model builds it, on the meta device, and the
    options released_model gives its format's loader."""
    task = TASKS.get(config.task.name)(config.task.params, config)
    data = task.data_spec()
    with torch.device("meta"):
        model = MODELS.get(config.model.name).build(config.model.params, data)
    return model, released._checks(config.weights.format, config, data)


def _fits_hub(config: RunConfig, layout: dict | None = None) -> None:
    """The loader's config.json check, renaming (rotary check, mask row) and strict
    name-and-shape check of the recorded safetensors keys against the meta model."""
    layout = layout or _layout(config)
    model, options = _meta_model(config)
    kind = config.weights.format.removeprefix("hub-")
    source = f"{_key(config)} (config.json)"
    network = check_hub_config(model, layout["settings"]["config.json"], kind, source, **options)
    state = {}  # shapes only, but the rotary frequencies, which the renaming checks
    for name, shape, dtype, values in layout["tensors"]:
        meta = torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        state[name] = meta if values is None else _tensor(shape, dtype, values)
    extra = WINDOW_KEYS if kind == "bd3lm" else ()
    renamed, _ = hub_network_state(model, network, state, _key(config), extra)
    load_network(network, renamed, _key(config))


def test_every_released_variant_has_a_recorded_layout():
    configs = _released()
    formats = {c.weights.format for c in configs.values()}
    assert formats == {"mdm-prime-text", "mdm-prime-image", "hub-mdlm", "hub-bd3lm"}
    files = _layouts()["files"]
    missing = sorted(f"{name}: {_key(c)}" for name, c in configs.items() if _key(c) not in files)
    assert not missing, f"no recorded layout for {missing}"
    assert all(files[_key(c)]["format"] == c.weights.format for c in configs.values())
    assert {_key(c) for c in configs.values()} == set(files)  # no layout left unused


@pytest.mark.slow
@pytest.mark.parametrize("fmt", TORCH_FORMATS)
def test_paper_models_load_the_released_files_layout(tmp_path, monkeypatch, fmt):
    failures, checked = [], 0
    for name, config in _released().items():
        if config.weights.format != fmt:
            continue
        checked += 1
        path = tmp_path / Path(config.weights.file).name
        (_text_file if fmt == "mdm-prime-text" else _image_file)(_layout(config), path)
        assert path.stat().st_size < 1_000_000  # one element per tensor
        monkeypatch.setattr(released, "fetch_weights", _fetched(path))
        try:
            model, card = released.released_model(config, None)
        except WeightsMismatch as err:
            failures.append(f"{name}: {err}")
            continue
        assert card.startswith(f"released weights: {config.weights.origin}")
        network = model.network
        network = getattr(network, "network", network)  # a LabelMixture's U-Net
        off = [k for k, p in network.named_parameters() if not bool((p == 1).all())]
        assert not off, f"{name}: not loaded from the EMA shadow weights: {off[:5]}"
        del model, network
        gc.collect()
    assert not failures, "\n".join(failures)
    assert checked == _recorded(fmt)


@pytest.mark.slow
def test_paper_models_fit_the_released_hub_files():
    failures, checked = [], 0
    for name, config in _released().items():
        if config.weights.format.startswith("hub-"):
            checked += 1
            try:
                _fits_hub(config)
            except WeightsMismatch as err:
                failures.append(f"{name}: {err}")
    assert not failures, "\n".join(failures)
    assert checked == _recorded("hub-mdlm") + _recorded("hub-bd3lm") == 4


def _as(config: RunConfig, other: str) -> RunConfig:
    """``config`` with the weights of the variant ``other``: a file of another variant."""
    weights = _released()[other].to_dict()["weights"]
    return RunConfig.from_dict({**config.to_dict(), "weights": weights})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "file_of", "message"),
    [
        ("table1/prime-l3", "table1/prime-l2", "prime.target_length is 2 in the checkpoint but 3"),
        ("ell-sweep/cifar10-l3", "ell-sweep/cifar10-l2", "args.target_length = 2 in the file"),
    ],
)
def test_a_file_of_another_variant_is_refused_naming_the_field(
    tmp_path, monkeypatch, variant, file_of, message
):
    config = _as(_released()[variant], file_of)
    path = tmp_path / "other.ckpt"
    write = _text_file if config.weights.format == "mdm-prime-text" else _image_file
    write(_layout(config), path)
    monkeypatch.setattr(released, "fetch_weights", _fetched(path))
    model, _ = _meta_model(_released()[variant])  # refused before any weight is read
    with pytest.raises(WeightsMismatch, match=message):
        released.released_model(config, model)


@pytest.mark.slow
def test_a_hub_file_of_another_block_size_is_refused_naming_the_field():
    config = _as(_released()["table1-hybrid/bd3lm-l8"], "table1-hybrid/bd3lm-l4")
    with pytest.raises(WeightsMismatch, match="block_size = 4 in config.json, but .* has 8"):
        _fits_hub(config)
