import io
import lzma
import math

import pytest
import torch

from prime import MaskedDiffusion, SamplerConfig, SubTokenizer
from prime.backbones import UNET_PRESETS, PixelUNet, UNetConfig
from prime.backbones.unet_keys import authors_key, from_authors, unwrap_ema
from tests.helpers import authors_unet_config
from tests.paths import FIXTURES

# The authors' U-Net on a fixed input: tests/fixtures/make_unet_fixture.py.
AUTHORS = FIXTURES / "unet_authors.pt.xz"

TINY = UNetConfig(
    model_channels=8, channel_mult=(3, 3), res_blocks=1, attention_at=(2,), head_dim=8, dropout=0.0
)


class _Constant(torch.nn.Module):
    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        return self.value


def test_pixel_encoder_places_each_channels_digits_in_its_slot():
    codec = SubTokenizer(256, 2)  # b = 16, digits (hi, lo) of each 8-bit value
    net = PixelUNet(TINY, channels=3, size=4, base=16, ell=2, num_classes=256)
    token_dim = 8 * 3 // 3
    pixels = torch.randint(0, 256, (2, 3, 4, 4))
    y = codec.encode(pixels.flatten(1))  # tokens in (channel, row, col) order
    h = net.embed_pixels(y)
    assert h.shape == (2, 3 * token_dim, 4, 4)
    table = net.embed.weight  # (b + 1, token_dim / ell)
    half = token_dim // 2
    for c in range(3):
        r, col = 1, 2
        hi, lo = codec.encode(pixels[0, c, r, col])
        slot = h[0, c * token_dim : (c + 1) * token_dim, r, col]
        assert torch.equal(slot[:half], table[hi]) and torch.equal(slot[half:], table[lo])


def test_shapes_errors_and_training_through_masked_diffusion():
    with pytest.raises(ValueError, match="ell=5 does not divide 8"):
        PixelUNet(TINY, channels=3, size=8, base=4, ell=5, num_classes=256)
    with pytest.raises(ValueError, match="not divisible by patch \\* 2"):
        PixelUNet(TINY, channels=1, size=7, base=16, ell=2, num_classes=256)
    torch.manual_seed(0)
    net = PixelUNet(TINY, channels=1, size=8, base=16, ell=2, num_classes=256)
    model = MaskedDiffusion(net, SubTokenizer(256, 2), "polynomial")
    x0 = torch.randint(0, 256, (4, 64))
    loss, _ = model.training_loss(x0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and net.out[-1].weight.grad.abs().sum() > 0
    result = model.sample(2, 64, SamplerConfig(steps=8), generator=torch.Generator().manual_seed(1))
    assert result.tokens.shape == (2, 64) and (result.tokens < 256).all()
    assert result.nfe <= 9  # no time input: idle steps reuse the cached prediction


def test_paper_preset_widths_size_and_initialisation():
    torch.manual_seed(0)
    cfg = UNET_PRESETS["paper"]
    net = PixelUNet(cfg, channels=3, size=32, base=16, ell=2, num_classes=256)
    assert net.embed.weight.shape == (17, 48)  # (b + 1) x 96 / ell
    widths = {m.res.in_layers[2].out_channels for m in net.down if hasattr(m, "res")}
    assert widths == {288, 384}
    # The authors' DiscretePrimeUNetModel(vocab_size=256, target_length=2, base=17) with
    # their model_discrete config has 113,965,680 parameters.
    assert sum(p.numel() for p in net.parameters()) == 113_965_680
    # Their encoder is an nn.Embedding (N(0, 1)); the scale-shift constants are uniform
    # in +-sqrt(4 * model_channels) = +-sqrt(384).
    assert abs(net.embed.weight.std().item() - 1) < 0.1
    constants = torch.cat(
        [m.scale_shift.flatten() for m in net.modules() if hasattr(m, "scale_shift")]
    )
    assert constants.numel() == 24_768  # 2 x the output width of each of the 35 res-blocks
    assert constants.abs().max() <= math.sqrt(384) < constants.abs().max() * 1.01
    assert abs(constants.mean().item()) < 0.3


def test_mdm_mixture_label_really_changes_the_network_input():
    from baselines import LabelMixture, build_mdm

    torch.manual_seed(0)
    net = PixelUNet(TINY, channels=1, size=8, base=256, ell=1, num_classes=256, num_labels=4)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    y = torch.randint(0, 257, (2, 64, 1))
    out = [net(y, None, torch.full((2,), k)) for k in range(4)]
    assert not torch.allclose(out[0], out[1])  # the label is wired through
    with pytest.raises(ValueError, match="pass label"):
        net(y)
    mixture = LabelMixture(net, 4).eval()
    averaged = torch.stack([torch.softmax(o, -1) for o in out]).mean(0)
    assert torch.allclose(mixture(y, None).exp(), averaged, atol=1e-5)
    model = build_mdm(LabelMixture(net, 4), 256, "polynomial", objective="cross_entropy")
    loss, _ = model.training_loss(torch.randint(0, 256, (3, 64)), torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    model.eval()
    assert model.sample(
        2, 64, SamplerConfig(steps=4), generator=torch.Generator().manual_seed(0)
    ).tokens.shape == (
        2,
        64,
    )


def test_patches_place_each_pixel_in_its_slot_and_its_logits_back_at_its_token():
    codec = SubTokenizer(256, 2)
    cfg = UNetConfig(8, (3, 3), 1, (2,), 8, 0.0, patch=2)
    net = PixelUNet(cfg, channels=1, size=8, base=16, ell=2, num_classes=256)
    token_dim, p = 8 * 3 // 4, 2
    pixels = torch.randint(0, 256, (2, 1, 8, 8))
    h = net.embed_pixels(codec.encode(pixels.flatten(1)))
    assert h.shape == (2, 4 * token_dim, 4, 4)
    table, half = net.embed.weight, token_dim // 2
    for r, col in [(0, 0), (3, 6), (5, 1), (7, 7)]:
        k = (r % p) * p + col % p
        slot = h[1, k * token_dim : (k + 1) * token_dim, r // p, col // p]
        hi, lo = codec.encode(pixels[1, 0, r, col])
        assert torch.equal(slot[:half], table[hi]) and torch.equal(slot[half:], table[lo])
    # The output layout is the inverse of the input's: with C = token width and an output
    # layer that returns the embedded input, each token's logits are its own embedding.
    cfg = UNetConfig(4, (4, 4), 1, (2,), 4, 0.0, patch=2)
    net = PixelUNet(cfg, channels=1, size=8, base=4, ell=1, num_classes=4)
    y = torch.randint(0, 4, (2, 64, 1))
    embedded = net.embed_pixels(y)
    net.out = _Constant(embedded)
    assert torch.equal(net(y), net.embed.weight[y[..., 0]])
    with pytest.raises(ValueError, match="not divisible by patch"):
        PixelUNet(cfg, channels=1, size=6, base=4, ell=1, num_classes=4)


def _authors() -> dict:
    return torch.load(io.BytesIO(lzma.decompress(AUTHORS.read_bytes())), weights_only=True)


@pytest.mark.parametrize("case", ["ell2", "ell1"])
def test_authors_unet_with_renamed_weights_gives_their_outputs(case):
    """Their weights load by a renaming alone (strict: no key left over or missing) and the
    logits agree: the scale-shift constants, the q/k/v-then-heads attention split, the
    encoder's slot layout, the skips and resampling are theirs. ell2: their
    DiscretePrimeUNetModel; ell1: their DiscreteUNetModel, which predicts C + 1 classes."""
    fixture = _authors()
    cfg, run = fixture["config"], fixture[case]
    assert cfg["use_scale_shift_norm"] and cfg["use_new_attention_order"]
    assert not cfg["conv_resample"] and not cfg["resblock_updown"]
    ours = authors_unet_config(cfg)
    x, expected = run["input"], run["output"]  # (B, channels*ell, H, W), (B, channels, H, W, C)
    (b, c, h, w, classes), ell = expected.shape, run["ell"]
    net = PixelUNet(ours, c, fixture["image_size"], run["base"], ell, classes).eval()
    net.load_state_dict(from_authors({k: v.float() for k, v in run["state"].items()}))
    # Their input channel c * ell + j is digit j (most significant first) of channel c.
    y = x.view(b, c, ell, h, w).permute(0, 1, 3, 4, 2).reshape(b, c * h * w, ell)
    with torch.no_grad():
        out = net(y)
    assert expected.std() > 0.5  # weights and input are non-trivial
    torch.testing.assert_close(out, expected.reshape(b, c * h * w, classes), atol=1e-5, rtol=0)


def test_unwrap_ema_pairs_each_shadow_copy_with_its_parameter():
    fixture = _authors()
    state, keys = fixture["ell2"]["state"], fixture["ema_keys"]
    names = list(state)
    # Their EMA wrapper's keys: the model's parameters in its own order, then one shadow
    # copy per parameter (the fixture script checked that copy i is parameter i).
    assert [k for k in keys if k.startswith("model.")] == [f"model.{n}" for n in names]
    ema = {k: torch.tensor(3) for k in keys}
    ema.update({f"model.{n}": state[n] for n in names})
    ema.update({f"shadow_params.{i}": 2 * state[n] for i, n in enumerate(names)})
    assert list(ema) == keys
    averaged, raw = unwrap_ema(ema), unwrap_ema(ema, averaged=False)
    assert list(averaged) == names and all(torch.equal(averaged[n], 2 * state[n]) for n in names)
    assert all(torch.equal(raw[n], state[n]) for n in names)
    del ema["shadow_params.0"]
    with pytest.raises(ValueError, match="shadow_params for"):
        unwrap_ema(ema)
    with pytest.raises(ValueError, match="unet.input_blocks.0.0.weight"):
        authors_key("unet.input_blocks.0.0.weight")
    with pytest.raises(ValueError, match="expected pixel_embedding"):
        authors_key("unet.time_embed.0.weight")
