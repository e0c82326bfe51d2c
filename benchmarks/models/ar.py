"""The ``ar`` entry: the autoregressive baseline, a causal transformer with the next-token
loss."""

from __future__ import annotations

from dataclasses import dataclass, field

from baselines import AutoregressiveLM

from ..core import DataSpec, ModelEntry
from ..registry import MODELS
from .backbone_params import ARMParams, DiTParams, build_backbone

__all__ = ["ARParams", "AR"]


@dataclass(frozen=True)
class ARParams:
    backbone: DiTParams | ARMParams = field(default_factory=DiTParams)
    """The causal network: dit is the suite's DiT with causal attention (adaLN-zero from
    t = 0); arm the authors' ARM, a plain pre-LayerNorm transformer (the paper's AR row)."""


@MODELS.register("ar")
class AR(ModelEntry):
    """Autoregressive baseline: a causal transformer, next-token loss."""

    Params = ARParams

    @classmethod
    def build(cls, params: ARParams, data: DataSpec) -> AutoregressiveLM:
        c = data.num_classes
        network = build_backbone(params.backbone, data, 1, c, c, causal=True)
        return AutoregressiveLM(network, c, bos_id=data.bos_id)
