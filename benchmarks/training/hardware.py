"""The settings a run uses on the device it got, chosen at run time and recorded.

On a CUDA device: bf16 autocast (Lightning's ``bf16-mixed``, i.e.
``torch.autocast(device_type="cuda", dtype=torch.bfloat16)``) where supported, TF32
matmuls on Ampere and newer, ``torch.compile`` of the network when asked, NCCL between
ranks, pinned host memory for the loader. On the CPU all of these are off (fp32, gloo).
Attention is PyTorch's scaled_dot_product_attention, which picks its flash or
memory-efficient kernel on GPUs by itself. :meth:`Hardware.tags` is stored with the run,
with whether the device computes bfloat16 natively (what ``fastest`` precision settings
were resolved by, :mod:`benchmarks.config.precision`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config.precision import bf16_support
from ..config.train_config import TrainConfig

__all__ = ["Hardware", "select_hardware", "PEAK_BF16_TFLOPS"]

# Dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment, for model FLOP
# utilisation; devices not listed report throughput without MFU.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.0,
    "A6000": 155.0,
    "A40": 150.0,
    "V100": 125.0,
    "4090": 165.0,
    "3090": 71.0,
}


@dataclass(frozen=True)
class Hardware:
    """What this process trains on and how."""

    accelerator: str  # "gpu" or "cpu"
    device_name: str
    backend: str  # process-group backend between ranks
    precision: str  # Lightning precision actually used
    tf32: bool
    compile: bool
    pin_memory: bool
    peak_tflops: float | None
    bf16: str  # "native: <why>" or "emulated: <why>"

    def tags(self) -> dict[str, str]:
        return {f"runtime.{k}": str(v) for k, v in self.__dict__.items()}

    def loader_workers(self, setting: int | None) -> int:
        """``train.loader_workers``, or its default for this device."""
        if setting is not None:
            return setting
        return 2 if self.accelerator == "gpu" else 0

    def maybe_compile(self, network: nn.Module) -> None:
        """Compile ``network`` in place (its state-dict keys stay the same)."""
        if self.compile:
            network.compile()


def _peak(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def select_hardware(cfg: TrainConfig) -> Hardware:
    """The settings for this process's device; applies the global TF32 switch."""
    native, why = bf16_support()
    bf16 = f"{'native' if native else 'emulated'}: {why}"
    if not torch.cuda.is_available():
        precision = "32-true" if cfg.precision == "auto" else cfg.precision
        return Hardware("cpu", "cpu", "gloo", precision, False, False, False, None, bf16)
    name = torch.cuda.get_device_name()
    precision = cfg.precision
    if precision == "auto":
        # The same probe as "fastest": a GPU before Ampere would only emulate bfloat16.
        precision = "bf16-mixed" if native else "32-true"
    tf32 = cfg.tf32 and torch.cuda.get_device_capability()[0] >= 8
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    peak = _peak(name)
    return Hardware("gpu", name, "nccl", precision, tf32, cfg.compile, True, peak, bf16)
