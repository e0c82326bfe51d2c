"""MDM-Mixture's two tempering rules and its label input (baselines.LabelMixture,
task.mixture_temper, model.label_input)."""

import pytest
import torch

from baselines import LabelMixture, build_mdm
from benchmarks.config.run_config import RunConfig
from benchmarks.core import ConfigError, DataSpec
from benchmarks.models.backbone_params import UNetParams
from benchmarks.registry import MODELS, TASKS
from prime import Sampler, SamplerConfig, SubTokenizer
from prime.backbones import PixelUNet, UNetConfig

TINY = UNetConfig(8, (3, 3), 1, (2,), 8, 0.0)
# Two components over two classes: p_1 = (0.9, 0.1), p_2 = (0.5, 0.5).
COMPONENTS = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).log()


class _ByLabel(torch.nn.Module):
    """Logits log p_k of component k at every token (label None: component 0)."""

    time_conditioned = False

    def forward(self, y_t: torch.Tensor, t: torch.Tensor, label: torch.Tensor | None):
        label = torch.zeros(len(y_t), dtype=torch.long) if label is None else label
        return COMPONENTS[label][:, None, :].expand(-1, y_t.shape[1], -1)


def test_the_two_tempering_rules_on_two_components():
    mixture = LabelMixture(_ByLabel(), 2).eval()
    y, t = torch.zeros(1, 3, 1, dtype=torch.long), torch.zeros(1)
    # mean: the mixture (0.7, 0.3), then tempered by the sampler: (0.49, 0.09) / 0.58.
    mean = torch.softmax(mixture(y, t) / 0.5, -1)[0, 0]
    assert torch.allclose(mean, torch.tensor([49 / 58, 9 / 58]))
    # components: (0.81, 0.01) / 0.82 and (0.25, 0.25) / 0.5, averaged: (61, 21) / 82.
    each = torch.softmax(mixture(y, t, temperature=torch.tensor([0.5])), -1)[0, 0]
    assert torch.allclose(each, torch.tensor([61 / 82, 21 / 82]))
    # tau = 1: both are the mixture itself.
    plain = torch.softmax(mixture(y, t), -1)[0, 0]
    assert torch.allclose(plain, torch.tensor([0.7, 0.3]))
    one = torch.softmax(mixture(y, t, temperature=torch.tensor([1.0])), -1)[0, 0]
    assert torch.allclose(one, plain)


def test_the_sampler_hands_tau_to_the_denoiser_and_leaves_its_output_alone():
    codec = SubTokenizer(8, 1)
    logits = torch.randn(8)
    calls = []

    def denoiser(y, t, temperature=None):
        calls.append(None if temperature is None else temperature[0].item())
        return logits.expand(*y.shape[:-1], -1).clone()

    def draw(**settings):
        calls.clear()
        config = SamplerConfig(steps=6, time_warp=(1.0, 0.0, 0.0), **settings)
        sampler = Sampler(denoiser, codec, config, schedule="polynomial")
        return sampler(4, 5, generator=torch.Generator().manual_seed(0)).tokens

    untempered = draw()
    tempered = draw(temperature=(-0.5, 1.0, 1.0), temper_components=True)
    # tau(s) = 1 - s / 2 at each step's s = k / 6, passed in, and never applied again
    assert calls == pytest.approx([1 - k / 12 for k in range(6)])
    assert torch.equal(tempered, untempered)
    assert not torch.equal(draw(temperature=(-0.5, 1.0, 1.0)), untempered)


def _mixture(label_input: str):
    params = MODELS.get("mdm-mixture").Params(
        label_input=label_input, backbone=UNetParams(preset="cpu-patch", dropout=0.0)
    )
    data = DataSpec(num_classes=256, seq_len=16, image_shape=(1, 4, 4))
    torch.manual_seed(0)
    model = MODELS.get("mdm-mixture").build(params, data)
    with torch.no_grad():  # the output convolution starts at zero: give it weights
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_without_label_input_no_output_depends_on_the_label():
    y = torch.randint(0, 257, (2, 16, 1))
    network = _mixture("none").network.network
    outputs = [
        network(y, None, label) for label in (None, torch.zeros(2).long(), torch.full((2,), 3))
    ]
    assert all(torch.equal(out, outputs[0]) for out in outputs)
    assert not any("label" in name for name, _ in network.named_parameters())
    fed = _mixture("embedding").network.network
    assert not torch.allclose(
        fed(y, None, torch.zeros(2).long()), fed(y, None, torch.ones(2).long())
    )
    # the released model is MDM's network: the same parameters, less the label table
    mdm = MODELS.get("mdm").build(
        MODELS.get("mdm").Params(
            objective="cross_entropy", backbone=UNetParams(preset="cpu-patch")
        ),
        DataSpec(num_classes=256, seq_len=16, image_shape=(1, 4, 4)),
    )
    count = sum(p.numel() for p in network.parameters())
    assert count == sum(p.numel() for p in mdm.parameters())
    assert sum(p.numel() for p in fed.parameters()) == count + 4 * fed.label_embed.weight.shape[1]


def test_a_tempered_mixture_samples_through_the_model():
    net = PixelUNet(TINY, channels=1, size=4, base=256, ell=1, num_classes=256, num_labels=2)
    model = build_mdm(LabelMixture(net, 2), 256, "polynomial", objective="cross_entropy").eval()
    config = SamplerConfig(
        steps=3, temperature=(-0.15, 1.0, 1.0), time_warp=(1.0, 0.0, 0.0), temper_components=True
    )
    result = model.sample(2, 16, config, generator=torch.Generator().manual_seed(0))
    assert result.tokens.shape == (2, 16) and (result.tokens < 256).all()
    assert result.nfe == 3  # a grid down to t = 0: one call per step, none reused


def test_components_tempering_is_for_the_mixture_only():
    raw = {
        "experiment": "x",
        "variant": "v",
        "scale": "cpu",
        "task": {"name": "image", "dataset": "cifar10", "mixture_temper": "components"},
        "model": {"name": "mdm", "objective": "cross_entropy", "backbone": {"name": "unet"}},
    }
    config = RunConfig.from_dict(raw)
    with pytest.raises(ConfigError, match="task.mixture_temper: components tempers each label"):
        TASKS.get("image")(config.task.params, config)
    mixture = RunConfig.from_dict({**raw, "model": {"name": "mdm-mixture"}})
    task = TASKS.get("image")(mixture.task.params, mixture)
    assert task.sampler_config().temper_components
