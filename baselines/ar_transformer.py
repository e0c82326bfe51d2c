"""The authors' autoregressive network (ARM): a pre-LayerNorm causal transformer.

MDLM's and MDM-Prime's AR baseline (their ``models/autoregressive.py``, config
``small-ar``). Tokens y (B, L, 1) -> logits (B, L, C), width D, H heads of width D/H:

    h_0 = E[y]                                                  E: (C + 1, D)
    a_l = h_{l-1} + Drop(W_o CausalAttn(W_qkv LN1_l(h_{l-1})))  W_qkv: (3D, D), W_o: (D, D)
    h_l = a_l + Drop(W_2 GELU_tanh(W_1 LN2_l(a_l) + b_1) + b_2) W_1: (4D, D), W_2: (D, 4D)
    logits = W_head LN_f(h_depth) + b_head                      W_head: (C + 1, D)

for l = 1..depth. LN is a LayerNorm with a weight and no bias, computed in float32 (the
residual stream stays float32 under autocast); W_qkv and W_o have no bias. Attention
splits W_qkv's output as (3, H, D/H), rotates q and k by their positions (rotary, the
rotate-half layout over all D/H dims, base 10000), scales by 1/sqrt(D/H) and is causal.
Dropout acts only on the two branch outputs, before the residual additions. There is no
time input and no conditioning: the ARM takes none (the t argument is ignored).

Initialisation: E is kaiming-uniform with a = sqrt(5) (uniform in +-1/sqrt(D)), the block
Linears keep PyTorch's default, LayerNorm weights are 1, the head is zero (so the first
step's loss is log C); the head is not tied to E.

The authors' vocabulary counts the mask token MDLM appends to GPT-2's (id C), so E and
the head have C + 1 rows; the mask's logit is pinned to -1000 before their log-softmax,
which gives it probability exactly 0 in floating point. This network therefore returns
the other C logits, and only computes those rows of the head.

Their state dict maps onto this one by renaming: ``vocab_embed.embedding`` ->
``embed.weight``, ``blocks.i.attn_qkv`` -> ``blocks.i.qkv``, ``blocks.i.attn_out`` ->
``blocks.i.proj``, ``output_layer.norm_final`` -> ``norm_out``, ``output_layer.linear``
-> ``head`` (norms and MLPs keep their names); their ``rotary_emb.inv_freq`` buffer is
the constant 1/10000^(2i/(D/H)) recomputed here. Their forward runs the blocks and the
head under a hard-coded bf16 autocast; here the caller's precision setting decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prime.backbones import SubTokenEmbedding
from prime.backbones.attention import apply_rotary, attend, check_rotary_heads, rotary

__all__ = ["ARMConfig", "ARM_PRESETS", "ARMTransformer"]


@dataclass(frozen=True)
class ARMConfig:
    hidden: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_rotary_heads("ARM", self.hidden, self.heads)


ARM_PRESETS = {
    "small": ARMConfig(hidden=768, depth=12, heads=12, dropout=0.1),  # the authors' small-ar
    "cpu": ARMConfig(hidden=128, depth=2, heads=4, dropout=0.0),
}


class _LayerNorm(nn.Module):
    """Weight-only LayerNorm in float32; the output stays float32, as the authors'."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (x.shape[-1],)) * self.weight


class _Block(nn.Module):
    def __init__(self, cfg: ARMConfig):
        super().__init__()
        d = cfg.hidden
        self.heads = cfg.heads
        self.norm1, self.norm2 = _LayerNorm(d), _LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(d, cfg.mlp_ratio * d),
            nn.GELU(approximate="tanh"),
            nn.Linear(cfg.mlp_ratio * d, d),
        )
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D/H)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        attn = attend(q, k, v, causal=True).transpose(1, 2).reshape(b, n, d)
        x = x + self.dropout(self.proj(attn))
        return x + self.dropout(self.mlp(self.norm2(x)))


class ARMTransformer(nn.Module):
    """The authors' ARM over C token classes (see the module docstring).

    Args:
        config: sizes (see ``ARM_PRESETS``).
        num_classes: C; the embedding and the head have C + 1 rows (the mask token's).
    """

    causal = True  # attends to earlier positions only
    time_conditioned = False  # takes no time

    def __init__(self, config: ARMConfig, num_classes: int):
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.embed = SubTokenEmbedding(num_classes, 1, config.hidden)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.depth))
        self.norm_out = _LayerNorm(config.hidden)
        self.head = nn.Linear(config.hidden, num_classes + 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs (forward + backward) per token, by the count of PaLM's appendix B:
        6 N + 12 depth hidden L, with N the weights of the blocks' and the head's matmuls."""
        per_token = sum(p.numel() for p in self.blocks.parameters() if p.dim() == 2)
        per_token += self.num_classes * self.config.hidden
        return 6.0 * per_token + 12.0 * self.config.depth * self.config.hidden * seq_len

    def forward(self, y: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """y (B, N, 1) token ids -> (B, N, C) logits, position i seeing y_1..y_i only."""
        if y.dim() != 3 or y.shape[-1] != 1:
            raise ValueError(f"ARM input: expected token ids (B, N, 1), got {tuple(y.shape)}")
        x = self.embed(y)
        rope = rotary(torch.arange(y.shape[1], device=y.device), x.shape[-1] // self.config.heads)
        for block in self.blocks:
            x = block(x, rope)
        c = self.num_classes  # the mask's row C is left out: its probability is 0
        return F.linear(self.norm_out(x), self.head.weight[:c], self.head.bias[:c])
