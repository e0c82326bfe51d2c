"""The authors' ARM (baselines.ar_transformer): their equations, causality, their
parameter set, and the AR model entry training with it.

The authors' module (mdm-prime text/models/autoregressive.py) needs flash_attn, which
runs on CUDA only, so no fixture of its outputs is made; instead their forward is
written out below in plain float32 tensor algebra and compared with the network.
"""

import math

import pytest
import torch

from baselines import ARM_PRESETS, ARMConfig, ARMTransformer
from benchmarks.config.experiments import load_experiment
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError, DataSpec
from benchmarks.models.ar import AR, ARParams
from benchmarks.models.backbone_params import ARMParams, DiTParams, build_backbone
from benchmarks.models.mdm_prime import Prime

TINY = ARMConfig(hidden=32, depth=2, heads=4, dropout=0.0)
C = 11


def _randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every weight random (the head starts at zero, the norms at one), eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = 0.3 * torch.randn(p.shape, generator=gen)
            p.copy_(1 + noise if "norm" in name else noise)
    return net.eval()


def _random_net() -> ARMTransformer:
    return _randomise(ARMTransformer(TINY, C))


def _authors_log_probs(net: ARMTransformer, y: torch.Tensor) -> torch.Tensor:
    """Their AR.forward (models/autoregressive.py:328-358) on y (B, N, 1), with the
    network's weights: (B, N, C + 1) log-probabilities, the mask column pinned to -1000."""
    b, n, _ = y.shape
    d, h = net.config.hidden, net.config.heads
    hd = d // h
    x = net.embed.weight[y[..., 0]]  # vocab_embed: embedding[x]
    inv_freq = 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd)
    angles = torch.outer(torch.arange(n).float(), inv_freq)[:, None]  # (N, 1, hd/2)
    cos, sin = angles.cos(), angles.sin()

    def rotate(u):  # flash_attn's non-interleaved rotary on (B, N, H, hd)
        u1, u2 = u[..., : hd // 2], u[..., hd // 2 :]
        return torch.cat([u1 * cos - u2 * sin, u2 * cos + u1 * sin], dim=-1)

    def norm(u, w):  # F.layer_norm without affine (eps 1e-5), times the weight
        mean = u.mean(-1, keepdim=True)
        var = ((u - mean) ** 2).mean(-1, keepdim=True)
        return (u - mean) / torch.sqrt(var + 1e-5) * w

    def gelu_tanh(u):
        return 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))

    future = torch.ones(n, n).triu(1).bool()
    for blk in net.blocks:
        qkv = norm(x, blk.norm1.weight) @ blk.qkv.weight.T
        q, k, v = qkv.view(b, n, 3, h, hd).unbind(2)  # 'b s (three h d)'
        scores = torch.einsum("bihd,bjhd->bhij", rotate(q), rotate(k)) / math.sqrt(hd)
        p = scores.masked_fill(future, float("-inf")).softmax(-1)
        attn = torch.einsum("bhij,bjhd->bihd", p, v).reshape(b, n, d)
        x = x + attn @ blk.proj.weight.T
        w1, b1, w2, b2 = blk.mlp[0].weight, blk.mlp[0].bias, blk.mlp[2].weight, blk.mlp[2].bias
        x = x + gelu_tanh(norm(x, blk.norm2.weight) @ w1.T + b1) @ w2.T + b2
    out = norm(x, net.norm_out.weight) @ net.head.weight.T + net.head.bias
    out[:, :, C] = -1000.0  # the mask index
    return out.log_softmax(-1)


def test_network_computes_the_authors_equations():
    net = _random_net()
    y = torch.randint(0, C, (2, 9, 1), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(y).log_softmax(-1)
        theirs = _authors_log_probs(net, y)
    assert ours.shape == (2, 9, C)
    assert torch.allclose(ours, theirs[..., :C], atol=1e-5)
    assert torch.equal(theirs[..., C].exp(), torch.zeros(2, 9))  # the mask: probability 0


def test_output_at_a_position_ignores_later_tokens():
    net = _random_net()
    y = torch.randint(0, C, (1, 10, 1), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = net(y)
        for j in range(10):
            changed = y.clone()
            changed[0, j, 0] = (y[0, j, 0] + 1) % C
            out = net(changed)
            assert torch.allclose(out[:, :j], base[:, :j], atol=1e-6)
            assert not torch.allclose(out[:, j], base[:, j])


def test_ar_model_scores_token_i_from_the_tokens_before_it():
    model = _randomise(AR.build(ARParams(ARMParams(preset="cpu")), DataSpec(C, 10, bos_id=0)))
    x = torch.randint(0, C, (1, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits, nll = model(x), model.token_nll(x)
        assert logits.shape == (1, 9, C) and nll.shape == (1, 9)
        for j in range(1, 10):  # row i predicts x_{i+1} from x_0..x_i
            changed = x.clone()
            changed[0, j] = (x[0, j] + 1) % C
            assert torch.allclose(model(changed)[:, :j], logits[:, :j], atol=1e-6)
            # row j - 1 has x_j as its target, rows from j on see it as an input
            assert torch.allclose(model.token_nll(changed)[:, : j - 1], nll[:, : j - 1])
            assert not torch.allclose(model.token_nll(changed)[:, j - 1], nll[:, j - 1])


def _authors_parameter_shapes(d: int, depth: int, vocab: int) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of their DDIT/AR (models/autoregressive.py:158-320)."""
    shapes = {"vocab_embed.embedding": (vocab, d)}
    for i in range(depth):
        shapes |= {
            f"blocks.{i}.norm1.weight": (d,),
            f"blocks.{i}.attn_qkv.weight": (3 * d, d),
            f"blocks.{i}.attn_out.weight": (d, d),
            f"blocks.{i}.norm2.weight": (d,),
            f"blocks.{i}.mlp.0.weight": (4 * d, d),
            f"blocks.{i}.mlp.0.bias": (4 * d,),
            f"blocks.{i}.mlp.2.weight": (d, 4 * d),
            f"blocks.{i}.mlp.2.bias": (d,),
        }
    shapes |= {
        "output_layer.norm_final.weight": (d,),
        "output_layer.linear.weight": (vocab, d),
        "output_layer.linear.bias": (vocab,),
    }
    return shapes


def _authors_name(name: str) -> str:
    """The renaming of the module docstring."""
    prefixes = {
        "embed.weight": "vocab_embed.embedding",
        "norm_out.": "output_layer.norm_final.",
        "head.": "output_layer.linear.",
    }
    for ours, theirs in prefixes.items():
        if name.startswith(ours):
            return theirs + name[len(ours) :]
    return name.replace(".qkv.", ".attn_qkv.").replace(".proj.", ".attn_out.")


def test_state_dict_is_the_authors_up_to_renaming():
    net = ARMTransformer(TINY, C)
    renamed = {_authors_name(k): tuple(v.shape) for k, v in net.state_dict().items()}
    assert renamed == _authors_parameter_shapes(TINY.hidden, TINY.depth, C + 1)


def test_small_preset_has_the_authors_parameter_count():
    # small-ar.yaml: hidden 768, 12 blocks, 12 heads; GPT-2's 50257 tokens + MDLM's mask.
    d, depth, vocab = 768, 12, 50257 + 1
    block = 2 * d + 3 * d * d + d * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    expected = vocab * d + depth * block + d + (d * vocab + vocab)
    with torch.device("meta"):
        model = AR.build(ARParams(ARMParams()), DataSpec(50257, 1024, bos_id=50256))
    assert model.network.config == ARM_PRESETS["small"] == ARMConfig(768, 12, 12, 4, 0.1)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_initialisation_and_flops():
    net = ARMTransformer(TINY, C)
    bound = 1 / math.sqrt(TINY.hidden)  # kaiming-uniform with a = sqrt(5), fan-in D
    assert float(net.embed.weight.detach().abs().max()) <= bound
    assert not net.head.weight.any() and not net.head.bias.any()
    assert all(bool((p == 1).all()) for n, p in net.named_parameters() if "norm" in n)
    d, n = TINY.hidden, 16
    matmuls = TINY.depth * (3 * d * d + d * d + 8 * d * d) + C * d
    assert net.flops_per_token(n) == 6 * matmuls + 12 * TINY.depth * d * n
    with pytest.raises(ValueError, match=r"expected token ids \(B, N, 1\)"):
        net(torch.zeros(2, 5, dtype=torch.long))


def test_ar_entry_trains_with_the_arm():
    torch.manual_seed(0)
    data = DataSpec(num_classes=16, seq_len=12, bos_id=0)
    model = AR.build(ARParams(ARMParams(preset="cpu")), data)
    x0 = torch.randint(0, 16, (8, 12), generator=torch.Generator().manual_seed(4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss, _ = model.training_loss(x0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(16), abs=1e-6)  # zero head: uniform
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as under bf16-mixed training
        assert torch.isfinite(model.training_loss(x0)[0])


def test_backbone_selection_and_errors():
    assert build_dataclass(ARParams, {}, "model").backbone == DiTParams()  # the default
    params = build_dataclass(ARParams, {"backbone": {"name": "arm", "preset": "cpu"}}, "model")
    assert params.backbone == ARMParams(preset="cpu")
    with pytest.raises(ConfigError, match="backbone.dropout: must be in"):
        ARMParams(dropout=1.5)
    assert ARMParams(dropout=0.2).config().dropout == 0.2
    data = DataSpec(num_classes=16, seq_len=12)
    with pytest.raises(ConfigError, match="'arm' is the autoregressive model's network"):
        build_backbone(ARMParams(preset="cpu"), data, 1, 16, 16, causal=False)
    with pytest.raises(ConfigError, match="model.backbone"):
        build_dataclass(Prime.Params, {"backbone": {"name": "arm"}}, "model")


def test_paper_ar_row_uses_the_arm_and_the_cpu_row_the_dit():
    (paper, *_) = load_experiment("table1").resolve("paper", None, ["ar"])
    assert paper.model.params.backbone == ARMParams(preset="small")
    (cpu, *_) = load_experiment("table1-cpu").resolve("cpu", None, ["ar"])
    assert cpu.model.params.backbone.name == "dit"
