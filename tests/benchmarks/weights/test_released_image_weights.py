"""The authors' image checkpoints (.pth) load into the suite's registry-built models.

The fixture (tests/fixtures/make_image_checkpoint_fixture.py) holds files written by the
authors' own ``save_model`` for a tiny ell = 2 MDM-Prime run and a tiny ell = 1 MDM run
(EMA wrapper, run arguments from their arg parser), and the logits their evaluation path
(fresh wrapper, ``load_model``, ``.train(False)``) computes from them on fixed inputs.
"""

import argparse
import io
import lzma
from pathlib import Path

import pytest
import torch

from benchmarks.core import DataSpec
from benchmarks.models.backbone_params import UNetParams
from benchmarks.models.mdm import MDM, MDMParams
from benchmarks.models.mdm_mixture import MDMMixture, MixtureParams
from benchmarks.models.mdm_prime import Prime, PrimeParams
from benchmarks.weights.foreign_pickle import opaque_fields, read_foreign_checkpoint
from benchmarks.weights.mapping import WeightsMismatch, load_network
from benchmarks.weights.mdm_prime_image import load_mdm_prime_image
from prime.backbones import UNET_PRESETS
from prime.backbones.unet_keys import from_authors, unwrap_ema
from tests.helpers import authors_unet_config
from tests.paths import FIXTURES

FIXTURE = FIXTURES / "image_checkpoints_authors.pt.xz"


@pytest.fixture(scope="module")
def authors() -> dict:
    return torch.load(io.BytesIO(lzma.decompress(FIXTURE.read_bytes())), weights_only=True)


@pytest.fixture
def tiny_unet(authors, monkeypatch):
    """The registry's ``cpu`` U-Net preset set to the fixture's sizes."""
    cfg = authors["config"]
    tiny = authors_unet_config(cfg)
    monkeypatch.setitem(UNET_PRESETS, "cpu", tiny)
    return tiny


def _data(authors) -> DataSpec:
    c, s = authors["config"]["in_channels"], authors["image_size"]
    return DataSpec(num_classes=256, seq_len=c * s * s, image_shape=(c, s, s))


def _build(authors, kind: str, **params):
    unet = UNetParams(preset="cpu")
    if kind == "prime":
        params = {"schedule": "polynomial", "objective": "cross_entropy"} | params
        return Prime.build(PrimeParams(backbone=unet, **params), _data(authors))
    if kind == "mdm":
        params = {"schedule": "polynomial", "objective": "cross_entropy_257"} | params
        return MDM.build(MDMParams(backbone=unet, **params), _data(authors))
    params = {"objective": "cross_entropy_257", "label_input": "none"} | params
    return MDMMixture.build(MixtureParams(backbone=unet, **params), _data(authors))


def _file(authors, run: str, tmp_path: Path) -> Path:
    path = tmp_path / authors["runs"][run]["file"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(authors["runs"][run]["pth"])
    return path


def _rewrite(path: Path, state=None, **changes) -> Path:
    """A copy of the checkpoint at ``path`` with some run arguments (or the state) changed."""
    ckpt = read_foreign_checkpoint(path)
    args = argparse.Namespace(**(opaque_fields(ckpt["args"]) | changes))
    out = path.with_name("changed.pth")
    torch.save(ckpt | {"args": args, "model": ckpt["model"] if state is None else state}, out)
    return out


def _theirs(authors, run: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Their input as the suite's (B, c*H*W, ell) sub-tokens, their logits as (B, L, V)."""
    x, out = authors["runs"][run]["input"], authors["runs"][run]["output"]
    (b, c, h, w, v), ell = out.shape, authors["runs"][run]["ell"]
    # Their input channel c * ell + j is digit j (most significant first) of channel c.
    y = x.view(b, c, ell, h, w).permute(0, 1, 3, 4, 2).reshape(b, c * h * w, ell)
    return y, out.reshape(b, c * h * w, v)


def _logits(model, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval().network(y, torch.zeros(y.shape[0]))


@pytest.mark.parametrize(("run", "kind"), [("prime_l2", "prime"), ("mdm", "mdm")])
def test_authors_image_checkpoint_loads_to_their_outputs(authors, tiny_unet, tmp_path, run, kind):
    """ell = 2: their DiscretePrimeUNetModel's C = 256 logits; ell = 1: their
    DiscreteUNetModel's 257 (the mask class last) into the suite's C + 1 head."""
    model = _build(authors, kind, **({"ell": 2} if kind == "prime" else {}))
    info = load_mdm_prime_image(model, _file(authors, run, tmp_path), head_dim=tiny_unet.head_dim)
    y, expected = _theirs(authors, run)
    assert expected.std() > 0.5  # weights and inputs are non-trivial
    torch.testing.assert_close(_logits(model, y), expected, atol=1e-5, rtol=0)
    epoch = {"prime_l2": 4249, "mdm": 2499}[run]
    assert info["weights.format"] == "mdm-prime image checkpoint"
    assert info["weights.epoch"] == f"{epoch} (0-based; {epoch + 1} epochs trained)"
    assert "dataset=cifar10" in info["weights.run"]


def test_authors_image_checkpoint_uses_ema_weights(authors, tiny_unet, tmp_path):
    """Their eval mode copies shadow_params into the network: the loaded weights are those,
    and the raw ones (model.*) give other logits; a file without the EMA wrapper (a run
    without --use_ema) loads its bare network."""
    path = _file(authors, "prime_l2", tmp_path)
    model = _build(authors, "prime", ell=2)
    info = load_mdm_prime_image(model, path, head_dim=tiny_unet.head_dim)
    assert info["weights.ema"].startswith("shadow_params") and "1234" in info["weights.ema"]
    state = read_foreign_checkpoint(path)["model"]
    shadow = from_authors(unwrap_ema(state))
    loaded = model.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in shadow.items())
    y, expected = _theirs(authors, "prime_l2")
    raw = from_authors(unwrap_ema(state, averaged=False))
    assert any(not torch.equal(raw[k], shadow[k]) for k in shadow)
    load_network(model.network, raw, "raw")
    gap = (_logits(model, y) - expected).abs().mean()
    assert gap > 0.1 * expected.abs().mean()

    bare = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    info = load_mdm_prime_image(
        model, _rewrite(path, bare, use_ema=False), head_dim=tiny_unet.head_dim
    )
    assert info["weights.ema"].startswith("none")
    assert all(torch.equal(model.network.state_dict()[k], v) for k, v in raw.items())
    with pytest.raises(WeightsMismatch, match="use_ema = True but the state has no shadow"):
        load_mdm_prime_image(model, _rewrite(path, bare), head_dim=tiny_unet.head_dim)


@pytest.mark.parametrize(
    ("run", "kind", "params", "kwargs", "message"),
    [
        ("prime_l2", "prime", {"ell": 4}, {}, r"args\.target_length = 2 in the file.* 4 as ell"),
        ("prime_l2", "mdm", {}, {}, r"args\.target_length = 2 in the file.* 1 as ell"),
        ("mdm", "prime", {"ell": 2}, {}, r"args\.target_length = 1 in the file.* 2 as ell"),
        ("mdm", "mdm", {"objective": "cross_entropy"}, {}, r"257 outputs .* U-Net 256"),
        ("prime_l2", "prime", {"ell": 2, "schedule": "loglinear"}, {}, r"schedule_n = 3\.0"),
        ("prime_l2", "prime", {"ell": 2}, {"dataset": "imagenet32"}, r"'cifar10' .* 'imagenet'"),
        ("prime_l2", "prime", {"ell": 2}, {"head_dim": 64}, r"heads are 64 wide.* \[8\]"),
        ("mdm", "mixture", {}, {}, r"args\.use_uniform_mixture = False in the file"),
    ],
)
def test_settings_that_do_not_fit_name_the_file_and_field(
    authors, tiny_unet, tmp_path, run, kind, params, kwargs, message
):
    model = _build(authors, kind, **params)
    path = _file(authors, run, tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsMismatch, match=message) as err:
        load_mdm_prime_image(model, path, **({"head_dim": tiny_unet.head_dim} | kwargs))
    assert str(path) in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_ell_mismatch_names_the_field(authors, tiny_unet, tmp_path):
    path = _file(authors, "prime_l2", tmp_path)
    with pytest.raises(WeightsMismatch) as err:
        load_mdm_prime_image(_build(authors, "prime", ell=8), path, head_dim=tiny_unet.head_dim)
    message = str(err.value)
    assert message.startswith(f"{path}: args.target_length = 2 in the file, but the model has 8")


def test_supertoken_checkpoint_is_refused_clearly(authors, tiny_unet, tmp_path):
    """The README's super-token run (parsed by their arg parser): no suite model fits it."""
    path = _rewrite(_file(authors, "mdm", tmp_path), **authors["supertoken_args"])
    with pytest.raises(WeightsMismatch, match="super_token = True: a super-token run") as err:
        load_mdm_prime_image(_build(authors, "mdm"), path, head_dim=tiny_unet.head_dim)
    assert str(path) in str(err.value)


def test_mixture_checkpoint_loads_into_the_label_free_mixture(authors, tiny_unet, tmp_path):
    """Their MDM-Mixture U-Net has no classes (it ignores the label): it loads into the
    suite's mdm-mixture with label_input none, whose log-probabilities are then theirs;
    a label-embedding mixture is refused."""
    path = _rewrite(_file(authors, "mdm", tmp_path), use_uniform_mixture=True, mixture_classes=4)
    model = _build(authors, "mixture", num_labels=4)
    load_mdm_prime_image(model, path, head_dim=tiny_unet.head_dim)
    y, expected = _theirs(authors, "mdm")
    torch.testing.assert_close(_logits(model, y), expected.log_softmax(-1), atol=1e-5, rtol=0)
    with pytest.raises(WeightsMismatch, match="args.mixture_classes = 4 .* 3"):
        load_mdm_prime_image(_build(authors, "mixture", num_labels=3), path, head_dim=8)
    labelled = _build(authors, "mixture", num_labels=4, label_input="embedding")
    with pytest.raises(WeightsMismatch, match="no label input .* label_input: none"):
        load_mdm_prime_image(labelled, path, head_dim=tiny_unet.head_dim)


def test_truncated_or_foreign_file_gives_an_error_naming_it(authors, tiny_unet, tmp_path):
    pth = authors["runs"]["prime_l2"]["pth"]
    truncated = tmp_path / "checkpoint-4249.pth"
    truncated.write_bytes(pth[: len(pth) // 2])
    model = _build(authors, "prime", ell=2)
    with pytest.raises(WeightsMismatch, match=f"{truncated}: .*torch checkpoint"):
        load_mdm_prime_image(model, truncated, head_dim=tiny_unet.head_dim)
    other = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}}, other)
    with pytest.raises(WeightsMismatch, match=f"{other}: not an MDM-Prime image checkpoint"):
        load_mdm_prime_image(model, other, head_dim=tiny_unet.head_dim)
    with pytest.raises(WeightsMismatch, match="no such file"):
        load_mdm_prime_image(model, tmp_path / "missing.pth")
