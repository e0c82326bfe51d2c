"""The authors' text checkpoints (MDLM, MDLM-Prime, ARM) load into the suite's models and
give the authors' outputs and likelihoods.

The fixture (tests/fixtures/make_text_checkpoint_fixture.py) holds tiny checkpoints that
Lightning wrote for the authors' own networks, with the EMA shadow weights differing from
the raw ones, and the authors' outputs on fixed inputs with either set.
"""

import io
import lzma
import os
import sys
from functools import cache
from pathlib import Path

import pytest
import torch

from baselines import AutoregressiveLM, build_mdm
from baselines.ar_keys import arm_key
from baselines.ar_transformer import ARMConfig, ARMTransformer
from benchmarks.weights.foreign_pickle import Opaque, read_foreign_checkpoint
from benchmarks.weights.lightning_checkpoint import config_tree
from benchmarks.weights.mapping import WeightsMismatch
from benchmarks.weights.mdm_prime_text import load_mdm_prime_text
from prime import MaskedDiffusion, SubTokenizer
from prime.backbones import DiT, DiTConfig
from prime.decoder.grid_softmax import grid_softmax
from tests.paths import FIXTURES

FIXTURE = FIXTURES / "text_checkpoints_authors.pt.xz"
TOL = {"atol": 2e-5, "rtol": 1e-5}


@cache
def _fixture() -> dict:
    return torch.load(io.BytesIO(lzma.decompress(FIXTURE.read_bytes())), weights_only=True)


def _record(name: str) -> dict:
    return _fixture()["models"][name]


def _ckpt(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.ckpt"
    path.write_bytes(_record(name)["ckpt"].numpy().tobytes())
    return path


def _dit(ell: int, base: int, out_dim: int, heads: int | None = None) -> DiT:
    sizes = _fixture()["sizes"]
    config = DiTConfig(
        hidden=sizes["hidden_size"],
        depth=sizes["n_blocks"],
        heads=heads or sizes["n_heads"],
        cond_dim=sizes["cond_dim"],
        dropout=0.0,
    )
    return DiT(config, base, ell, out_dim)


def _prime(name: str, ell: int | None = None, carry_over: bool | None = None, heads=None):
    record, c = _record(name), _fixture()["num_classes"]
    codec = SubTokenizer(c, ell or record["ell"])
    network = _dit(codec.ell, codec.base, c, heads)
    carry = record["carry_over"] if carry_over is None else carry_over
    return MaskedDiffusion(network, codec, "loglinear", carry_over=carry).eval()


def _mdlm() -> MaskedDiffusion:
    c = _fixture()["num_classes"]
    return build_mdm(_dit(1, c, c), c).eval()


def _arm() -> AutoregressiveLM:
    sizes, c = _fixture()["sizes"], _fixture()["num_classes"]
    config = ARMConfig(sizes["hidden_size"], sizes["n_blocks"], sizes["n_heads"], dropout=0.0)
    return AutoregressiveLM(ARMTransformer(config, c), c).eval()


def _prime_logits(model: MaskedDiffusion, record: dict) -> torch.Tensor:
    # Their PerceiverDIT reads (B, L * ell) sub-tokens, token-major; the suite (B, L, ell).
    y = record["input"].view(record["input"].shape[0], -1, record["ell"])
    with torch.no_grad():
        return model.network(y, torch.zeros(y.shape[0]))


def _rewritten(tmp_path: Path, name: str, edit) -> Path:
    """The fixture's checkpoint re-saved with plain containers after ``edit(ckpt)``."""
    ckpt = read_foreign_checkpoint(_ckpt(tmp_path, name))
    ckpt["hyper_parameters"] = {"config": config_tree(ckpt["hyper_parameters"]["config"])}
    ckpt = {k: ckpt[k] for k in ("state_dict", "ema", "hyper_parameters", "global_step", "epoch")}
    edit(ckpt)
    path = tmp_path / f"{name}-rewritten.ckpt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("name", ["prime_l2", "prime_l3"])
def test_authors_prime_checkpoint_loads_to_their_outputs(tmp_path, name):
    record = _record(name)
    model = _prime(name)
    info = load_mdm_prime_text(model, _ckpt(tmp_path, name))
    logits = _prime_logits(model, record)
    torch.testing.assert_close(logits, record["output_ema"], **TOL)
    assert info["weights.network"].startswith(f"PerceiverDIT (MDLM-Prime), ell = {record['ell']}")
    # The likelihood, not only the logits: their parameterisation (carry-over restriction
    # for prime_l3, a plain softmax for prime_l2) at the clean tokens.
    y = record["input"].view(*record["x0"].shape, record["ell"])
    out = grid_softmax(
        logits, y, model.codec, targets=record["x0"], carry_over=record["carry_over"]
    )
    torch.testing.assert_close(out.token_log_prob, record["token_log_prob_ema"], **TOL)


@pytest.mark.parametrize("name", ["prime_l2", "prime_l3"])
def test_suite_codec_gives_the_authors_subtokens(name):
    record = _record(name)
    codec = SubTokenizer(_fixture()["num_classes"], record["ell"])
    x0 = record["x0"]
    assert codec.base == record["base"] and codec.mask_id == record["base"]
    # Their encoder's digits, most significant first, flattened token-major.
    assert torch.equal(codec.encode(x0).reshape(x0.shape[0], -1), record["subtokens"])
    noised = record["input"].view(*x0.shape, record["ell"])
    revealed = noised != codec.mask_id
    assert torch.equal(noised[revealed], codec.encode(x0)[revealed])


def test_authors_mdlm_checkpoint_loads_to_their_outputs(tmp_path):
    record, c = _record("mdlm"), _fixture()["num_classes"]
    model = _mdlm()
    info = load_mdm_prime_text(model, _ckpt(tmp_path, "mdlm"))
    x_t = record["input"]
    with torch.no_grad():
        logits = model.network(x_t.unsqueeze(-1), torch.zeros(x_t.shape[0]))
    theirs = record["output_ema"]
    assert theirs.shape[-1] == c + 1 and logits.shape[-1] == c
    torch.testing.assert_close(logits, theirs[..., :c], **TOL)
    # Their SUBS adds -1e6 to the mask class (column C) before the log-softmax, so the C
    # real classes' log-probabilities equal the suite's softmax over its C outputs.
    subs = theirs.clone()
    subs[..., c] -= 1e6
    torch.testing.assert_close(
        torch.log_softmax(logits, -1), torch.log_softmax(subs, -1)[..., :c], **TOL
    )
    assert "mask class row C dropped" in info["weights.head"]


def test_authors_mdlm_head_keeps_the_mask_class_for_a_257_way_model(tmp_path):
    record, c = _record("mdlm"), _fixture()["num_classes"]
    model = build_mdm(_dit(1, c, c + 1), c, objective="cross_entropy_257").eval()
    load_mdm_prime_text(model, _ckpt(tmp_path, "mdlm"))
    with torch.no_grad():
        out = model.network(record["input"].unsqueeze(-1), torch.zeros(2))
    torch.testing.assert_close(out, record["output_ema"], **TOL)


def test_authors_arm_checkpoint_loads_to_their_outputs(tmp_path):
    record, c = _record("arm"), _fixture()["num_classes"]
    model = _arm()
    info = load_mdm_prime_text(model, _ckpt(tmp_path, "arm"))
    x = record["x0"]
    with torch.no_grad():
        logits = model.network(x.unsqueeze(-1))
        nll = model.token_nll(x)
    theirs = record["output_ema"]  # their log-softmax over C + 1, the mask pinned at -1000
    assert (theirs[..., c] < -900).all()
    torch.testing.assert_close(torch.log_softmax(logits, -1), theirs[..., :c], **TOL)
    torch.testing.assert_close(nll, record["nll_ema"], **TOL)
    assert info["weights.network"] == f"AR (ARM), C = {c}"


@pytest.mark.parametrize("name", ["mdlm", "prime_l2", "arm"])
def test_authors_checkpoint_ema_weights_are_loaded(tmp_path, name):
    record = _record(name)
    path = _ckpt(tmp_path, name)
    stored = read_foreign_checkpoint(path)
    outputs = {}
    for ema in (True, False):
        model = {"mdlm": _mdlm, "arm": _arm}.get(name, lambda: _prime(name))()
        info = load_mdm_prime_text(model, path, ema=ema)
        with torch.no_grad():
            if name == "arm":
                out = torch.log_softmax(model.network(record["x0"].unsqueeze(-1)), -1)
            elif name == "mdlm":
                out = model.network(record["input"].unsqueeze(-1), torch.zeros(2))
            else:
                out = _prime_logits(model, record)
        outputs[ema] = out
        assert info["weights.ema"].startswith("EMA shadow" if ema else "raw weights")
    c = outputs[True].shape[-1]
    assert not torch.allclose(record["output_ema"], record["output_raw"], atol=1e-2)
    torch.testing.assert_close(outputs[True], record["output_ema"][..., :c], **TOL)
    torch.testing.assert_close(outputs[False], record["output_raw"][..., :c], **TOL)
    assert info["weights.global_step"] == str(stored["global_step"])
    assert info["weights.epoch"] == str(stored["epoch"])
    assert f"decay {stored['ema']['decay']}" in load_mdm_prime_text(model, path)["weights.ema"]


def test_mismatched_ell_names_the_field(tmp_path):
    path = _ckpt(tmp_path, "prime_l2")
    with pytest.raises(WeightsMismatch, match="prime.target_length is 2 in the checkpoint but 3"):
        load_mdm_prime_text(_prime("prime_l2", ell=3), path)


def test_mismatched_heads_and_carry_over_name_the_field(tmp_path):
    path = _ckpt(tmp_path, "prime_l3")
    # The number of heads changes no tensor's shape: only the stored config shows it.
    with pytest.raises(WeightsMismatch, match="model.n_heads is 4 in the checkpoint but 2"):
        load_mdm_prime_text(_prime("prime_l3", heads=2), path)
    with pytest.raises(WeightsMismatch, match=r"prime.carry_over is True .* but False"):
        load_mdm_prime_text(_prime("prime_l3", carry_over=False), path)


def test_arm_checkpoint_into_a_diffusion_model_names_the_backbone(tmp_path):
    with pytest.raises(WeightsMismatch, match="backbone is 'ar' in the checkpoint but 'dit'"):
        load_mdm_prime_text(_mdlm(), _ckpt(tmp_path, "arm"))
    with pytest.raises(WeightsMismatch, match="backbone is 'dit' in the checkpoint but 'ar'"):
        load_mdm_prime_text(_arm(), _ckpt(tmp_path, "mdlm"))


def test_mismatched_vocabulary_and_time_conditioning_name_the_field(tmp_path):
    c = _fixture()["num_classes"]
    smaller = build_mdm(_dit(1, c - 10, c - 10), c - 10)
    with pytest.raises(WeightsMismatch, match=f"vocabulary size .* is {c} in the checkpoint"):
        load_mdm_prime_text(smaller, _ckpt(tmp_path, "mdlm"))
    path = _rewritten(
        tmp_path,
        "mdlm",
        lambda ckpt: ckpt["hyper_parameters"]["config"].update(time_conditioning=True),
    )
    with pytest.raises(WeightsMismatch, match="time_conditioning is True in the checkpoint"):
        load_mdm_prime_text(_mdlm(), path)


def _drop(key: str, shadow_too: bool):
    def edit(ckpt):
        names = [k for k in ckpt["state_dict"] if not k.endswith("rotary_emb.inv_freq")]
        if shadow_too:
            del ckpt["ema"]["shadow_params"][names.index(key)]
        del ckpt["state_dict"][key]

    return edit


def test_missing_key_is_named(tmp_path):
    path = _rewritten(tmp_path, "mdlm", _drop("backbone.blocks.1.attn_out.weight", True))
    with pytest.raises(WeightsMismatch, match=r"missing from the file \(1\): blocks.1.proj.weight"):
        load_mdm_prime_text(_mdlm(), path)


def test_ema_not_matching_the_weights_is_named(tmp_path):
    path = _rewritten(tmp_path, "mdlm", _drop("backbone.blocks.1.attn_out.weight", False))
    with pytest.raises(WeightsMismatch, match="ema.shadow_params holds 30 tensors.* 29"):
        load_mdm_prime_text(_mdlm(), path)


class _CallsSystem:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_naming_os_system_loads_without_calling_it(tmp_path, monkeypatch):
    marker = tmp_path / "was-called"
    path = _rewritten(
        tmp_path,
        "prime_l2",
        lambda ckpt: ckpt["hyper_parameters"].update(tokenizer=_CallsSystem(marker)),
    )
    monkeypatch.setitem(sys.modules, "omegaconf", None)  # the loader must not need it
    model, record = _prime("prime_l2"), _record("prime_l2")
    load_mdm_prime_text(model, path)
    assert not marker.exists()
    torch.testing.assert_close(_prime_logits(model, record), record["output_ema"], **TOL)
    # The original file's tokenizer is a class this process does not know: kept inert.
    original = read_foreign_checkpoint(_ckpt(tmp_path, "prime_l2"))
    tokenizer = original["hyper_parameters"]["tokenizer"]
    assert isinstance(tokenizer, Opaque) and tokenizer.name.endswith("TokenizerStandIn")


def test_arm_names_refuse_a_diffusion_dit():
    assert arm_key("blocks.0.attn_qkv.weight") == "blocks.0.qkv.weight"
    assert arm_key("output_layer.linear.bias") == "head.bias"
    with pytest.raises(KeyError, match="time-conditioned"):
        arm_key("blocks.0.adaLN_modulation.weight")
