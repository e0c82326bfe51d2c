"""The released hub-format MDLM and BD3-LM models load into the suite's networks and
compute what the authors' networks compute (benchmarks/weights/hub_models.py).

The fixture (tests/fixtures/make_hub_model_fixture.py) holds tiny models written by the
authors' code as hub snapshots (config.json + model.safetensors), fixed inputs and their
outputs in eval mode. Their heads have C + 1 logits, the last the mask class that their
SUBS parameterization gives no probability; the suite's C-output head is compared with
their first C columns, a mask-class head with all C + 1.
"""

import io
import json
import lzma
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from baselines import BlockDiffusion, build_mdm, context_mask
from benchmarks.core import DataSpec
from benchmarks.models.backbone_params import DiTParams
from benchmarks.models.mdm import MDM, MDMParams
from benchmarks.weights.hub_models import load_hub_bd3lm, load_hub_mdlm
from benchmarks.weights.mapping import WeightsMismatch
from prime import SubTokenizer
from prime.backbones import DiT, DiTConfig
from tests.paths import FIXTURES

AUTHORS = FIXTURES / "hub_models_authors.pt.xz"
TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def authors() -> dict:
    return torch.load(io.BytesIO(lzma.decompress(AUTHORS.read_bytes())), weights_only=False)


def _snapshot(tmp_path: Path, files: dict[str, bytes], name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    for file, data in files.items():
        (directory / file).write_bytes(data)
    return directory / "model.safetensors"


def _edit_config(path: Path, **fields) -> None:
    config_path = path.with_name("config.json")
    config = json.loads(config_path.read_text())
    config.update(fields)
    config_path.write_text(json.dumps(config))


def _network(sizes: dict, classes: int, out_dim: int) -> DiT:
    config = DiTConfig(
        hidden=sizes["hidden_dim"],
        depth=sizes["n_blocks"],
        heads=sizes["n_heads"],
        cond_dim=sizes["cond_dim"],
        dropout=0.0,
    )
    return DiT(config, base=classes, ell=1, out_dim=out_dim)


def _mdlm(authors: dict, objective: str = "valid"):
    classes = authors["num_classes"]
    out_dim = classes + (objective == "cross_entropy_257")
    return build_mdm(
        _network(authors["mdlm_sizes"], classes, out_dim), classes, objective=objective
    )


def _bd3lm(authors: dict, block: int) -> BlockDiffusion:
    classes = authors["num_classes"]
    network = _network(authors["bd3lm_sizes"], classes, classes)
    return BlockDiffusion(network, SubTokenizer(classes, 1), block, attention="sdpa")


def test_hub_mdlm_safetensors_load_to_their_outputs(authors, tmp_path):
    ref = authors["mdlm"]
    model = _mdlm(authors)
    record = load_hub_mdlm(model, _snapshot(tmp_path, ref["files"], "mdlm"))
    model.eval()
    with torch.no_grad():
        out = model(ref["input"][..., None], ref["timesteps"])
    classes = authors["num_classes"]
    assert out.shape == (*ref["input"].shape, classes)
    torch.testing.assert_close(out, ref["output"][..., :classes], **TOL)
    assert record["weights.format"] == "hub transformers model (MDLM)"
    assert f"row {classes}" in record["weights.mask_class"]
    assert "hidden_dim=32" in record["weights.config"]


def test_hub_mdlm_mask_class_head_keeps_their_mask_column(authors, tmp_path):
    ref = authors["mdlm"]
    model = _mdlm(authors, objective="cross_entropy_257")
    record = load_hub_mdlm(model, _snapshot(tmp_path, ref["files"], "mdlm"))
    model.eval()
    with torch.no_grad():
        out = model.network(ref["input"][..., None], ref["timesteps"])
    torch.testing.assert_close(out, ref["output"], **TOL)  # all C + 1 columns
    assert "kept" in record["weights.mask_class"]


def test_dropped_mask_column_has_no_probability_under_their_subs(authors):
    # Their SUBS adds -1e6 to the mask logit before the log-softmax: the C-way softmax of
    # the first C logits is their distribution exactly.
    logits = authors["mdlm"]["output"].double()
    subs = logits.clone()
    subs[..., -1] += -1e6
    theirs = subs.log_softmax(-1)
    assert bool((theirs[..., -1].exp() == 0).all())
    torch.testing.assert_close(theirs[..., :-1], logits[..., :-1].log_softmax(-1))


@pytest.mark.parametrize("block", [4, 8])
def test_hub_bd3lm_safetensors_load_to_their_outputs(authors, tmp_path, block):
    ref = authors["bd3lm"][block]
    model = _bd3lm(authors, block)
    seq_len = authors["bd3lm_sizes"]["model_length"]
    path = _snapshot(tmp_path, ref["files"], f"bd3lm{block}")
    record = load_hub_bd3lm(model, path, seq_len=seq_len)
    model.eval()
    with torch.no_grad():
        out = model.predict(ref["x0"], torch.zeros(2), ref["xt"][..., None])
    classes = authors["num_classes"]
    assert out.shape == (2, seq_len, classes)
    torch.testing.assert_close(out, ref["output"][..., :classes], **TOL)
    assert record["weights.block_size"] == str(block)
    low, high = authors["window"]
    assert f"sampling_eps_min={low:g}" in record["weights.window"]
    assert f"sampling_eps_max={high:g}" in record["weights.window"]
    assert "not applied" in record["weights.window"]
    assert model.training_window == (model.time_eps, 1.0)  # the stored window is not applied


@pytest.mark.parametrize("block", [4, 8])
def test_hub_bd3lm_sample_mode_matches_the_block_causal_pass(authors, tmp_path, block):
    # Their sampling pass without a cache: a clean prefix, block-causal over positions 0..m-1.
    ref = authors["bd3lm"][block]
    model = _bd3lm(authors, block)
    load_hub_bd3lm(model, _snapshot(tmp_path, ref["files"], f"bd3lm{block}"))
    model.eval()
    prefix = ref["sample_input"]
    positions = torch.arange(prefix.shape[1])
    with torch.no_grad():
        out = model.network(
            prefix[..., None], None, positions=positions, mask=context_mask(positions, block)
        )
    torch.testing.assert_close(out, ref["sample_output"][..., : authors["num_classes"]], **TOL)


def test_hub_bd3lm_flex_backend_in_the_file_loads_the_same(authors, tmp_path):
    ref = authors["bd3lm"][4]
    path = _snapshot(tmp_path, ref["files"], "bd3lm")
    _edit_config(path, attn_backend="flex")  # what the released files name
    model = _bd3lm(authors, 4)
    record = load_hub_bd3lm(model, path)
    assert "attn_backend=flex" in record["weights.attention"]
    with torch.no_grad():
        out = model.eval().predict(ref["x0"], torch.zeros(2), ref["xt"][..., None])
    torch.testing.assert_close(out, ref["output"][..., : authors["num_classes"]], **TOL)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden_dim", 64),
        ("n_blocks", 3),
        ("n_heads", 4),
        ("cond_dim", 32),
        ("vocab_size", 50258),
        ("block_size", 16),
        ("time_conditioning", True),
        ("cross_attn", False),
        ("adaln", False),
    ],
)
def test_hub_config_mismatch_names_the_field(authors, tmp_path, field, value):
    path = _snapshot(tmp_path, authors["bd3lm"][4]["files"], "bd3lm")
    _edit_config(path, **{field: value})
    with pytest.raises(WeightsMismatch) as err:
        load_hub_bd3lm(_bd3lm(authors, 4), path)
    message = str(err.value)
    assert "config.json" in message and f"{field} = {value!r}" in message
    suite = {"hidden_dim": 32, "n_blocks": 2, "n_heads": 2, "cond_dim": 16, "vocab_size": 51}
    suite |= {"block_size": 4, "time_conditioning": False, "cross_attn": True, "adaln": True}
    assert f"the suite's model has {suite[field]!r}" in message


def test_hub_model_length_must_be_the_sequence_length(authors, tmp_path):
    path = _snapshot(tmp_path, authors["bd3lm"][4]["files"], "bd3lm")
    with pytest.raises(WeightsMismatch, match=r"model_length = 16 in config.json.* has 32"):
        load_hub_bd3lm(_bd3lm(authors, 4), path, seq_len=32)


def test_hub_registry_built_mdlm_of_other_sizes_is_refused_by_field(authors, tmp_path):
    data = DataSpec(num_classes=authors["num_classes"], seq_len=12)
    model = MDM.build(MDMParams(backbone=DiTParams(preset="cpu")), data)
    path = _snapshot(tmp_path, authors["mdlm"]["files"], "mdlm")
    with pytest.raises(WeightsMismatch, match=r"hidden_dim = 32 in config.json.* has 128"):
        load_hub_mdlm(model, path)


def test_missing_config_json_is_named(authors, tmp_path):
    path = _snapshot(tmp_path, authors["mdlm"]["files"], "mdlm")
    path.with_name("config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json: not found"):
        load_hub_mdlm(_mdlm(authors), path)


def test_hub_model_type_decides_the_loader(authors, tmp_path):
    bd3lm = _snapshot(tmp_path, authors["bd3lm"][4]["files"], "bd3lm")
    with pytest.raises(WeightsMismatch, match="model_type = 'bd3lm', expected 'mdlm'"):
        load_hub_mdlm(_mdlm(authors), bd3lm)
    mdlm = _snapshot(tmp_path, authors["mdlm"]["files"], "mdlm")
    with pytest.raises(WeightsMismatch, match="model_type = 'mdlm', expected 'bd3lm'"):
        load_hub_bd3lm(_bd3lm(authors, 4), mdlm)


def test_hub_unknown_tensor_is_named(authors, tmp_path):
    path = _snapshot(tmp_path, authors["mdlm"]["files"], "mdlm")
    state = load_file(str(path))
    state["backbone.blocks.0.extra.weight"] = torch.zeros(2)
    save_file(state, str(path))
    with pytest.raises(WeightsMismatch, match="blocks.0.extra.weight"):
        load_hub_mdlm(_mdlm(authors), path)


def test_hub_rotary_buffer_of_other_frequencies_is_refused(authors, tmp_path):
    path = _snapshot(tmp_path, authors["mdlm"]["files"], "mdlm")
    state = load_file(str(path))
    state["backbone.rotary_emb.inv_freq"] = state["backbone.rotary_emb.inv_freq"] * 2
    save_file(state, str(path))
    with pytest.raises(WeightsMismatch, match="rotary"):
        load_hub_mdlm(_mdlm(authors), path)
