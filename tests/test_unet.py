import pytest
import torch

from prime import MaskedDiffusion, SamplerConfig, SubTokenizer
from prime.backbones import UNET_PRESETS, PixelUNet, UNetConfig

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


def test_paper_preset_widths():
    cfg = UNET_PRESETS["paper"]
    net = PixelUNet(cfg, channels=3, size=32, base=16, ell=2, num_classes=256)
    assert net.embed.weight.shape == (17, 48)  # (b + 1) x 96 / ell
    widths = {m.res.body[2].out_channels for m in net.down if hasattr(m, "res")}
    assert widths == {288, 384}


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
