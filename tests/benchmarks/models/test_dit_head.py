"""model.backbone.head_float32: the DiT's final layer outside the training autocast."""

from __future__ import annotations

import torch

from benchmarks.config.run_config import ComponentConfig
from benchmarks.core import DataSpec
from benchmarks.models.backbone_params import DiTParams, build_backbone
from benchmarks.models.mdm_prime import PrimeParams
from prime.backbones import DIT_PRESETS, DiT

DATA = DataSpec(num_classes=64, seq_len=8)


def _pair() -> tuple[DiT, DiT]:
    """Two cpu-preset DiTs with the same weights, the second with the float32 head; the
    zero-initialised final layer is filled in so that its outputs are not all zero."""
    torch.manual_seed(0)
    plain = DiT(DIT_PRESETS["cpu"], base=8, ell=2, out_dim=64)
    with torch.no_grad():
        for p in (*plain.modulation_out.parameters(), *plain.head.parameters()):
            p.normal_(0.0, 0.5)
    wide = DiT(DIT_PRESETS["cpu"], base=8, ell=2, out_dim=64, head_float32=True)
    wide.load_state_dict(plain.state_dict())
    return plain.eval(), wide.eval()


def test_the_head_computes_in_float32_inside_a_bf16_autocast_only_when_set():
    plain, wide = _pair()
    y = torch.randint(0, 9, (2, 8, 2))
    seen = {}
    wide.norm_out.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    wide.modulation_out.register_forward_hook(lambda m, args, out: seen.update(c=args[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert plain(y).dtype == torch.bfloat16
        out = wide(y)
    assert out.dtype == torch.float32 and seen["x"].dtype == seen["c"].dtype == torch.float32
    # The final layer in float32, outside autocast, on what the blocks computed under it.
    with torch.no_grad():
        assert torch.equal(out, plain._final(seen["x"], seen["c"]))
    # Outside autocast both run in float32: the setting changes nothing there.
    with torch.no_grad():
        assert torch.equal(plain(y), wide(y))
    # Its float32 output is not bf16-rounded: not every value sits on the bf16 grid.
    assert not torch.equal(out, out.bfloat16().float())


def test_the_setting_reaches_the_network_and_the_run_id_only_when_on():
    on, off = DiTParams(preset="cpu", head_float32=True), DiTParams(preset="cpu")
    assert build_backbone(on, DATA, 2, 8, 64).head_float32
    assert not build_backbone(off, DATA, 2, 8, 64).head_float32
    # A nested setting added later: absent from the stored config at its default, so the
    # runs started before it existed keep their ids.
    plain = ComponentConfig("prime", PrimeParams(backbone=off)).to_dict()
    assert "head_float32" not in plain["backbone"] and plain["backbone"]["preset"] == "cpu"
    wide = ComponentConfig("prime", PrimeParams(backbone=on)).to_dict()
    assert wide["backbone"]["head_float32"] is True
