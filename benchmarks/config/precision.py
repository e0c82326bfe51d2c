"""``fastest``: the precision a run's networks compute in, chosen for the machine.

bfloat16 (8 exponent bits, 7 mantissa bits) halves the bytes of every activation, and
where the hardware computes it natively it doubles the throughput of the matrix units:
GPUs from Ampere on, x86 CPUs with AVX512-BF16 or AMX, Arm CPUs with the BF16 extension.
Elsewhere every bfloat16 kernel converts its operands to float32 and back around float32
arithmetic: on a Zen 3 CPU (AVX2 only) a 96-channel 3 x 3 convolution, forward and
backward, took 31x as long under bfloat16 autocast as in float32.

A setting whose value is ``fastest`` (``train.precision``, the image task's
``sample_precision`` and ``fid_precision``, the text tasks' ``network_precision``) is
replaced, when the run config is built, by bfloat16 where the machine computes it
natively and float32 elsewhere. The replacement
happens before the run id is computed, so the id says which precision trained and
evaluated the run: a float32 run never resumes a bfloat16 checkpoint, and the stored
config records the choice. The choice is made on the machine that resolves the
experiment (the one ``primebench`` is started on), which at the cpu scale is the one
that runs it.

``PRIMEBENCH_CPU_BF16=1`` or ``=0`` overrides what the CPU reports (for a CPU whose
report is wrong, or to run the other precision on purpose); the tests set 0 so that no
test depends on the machine's bfloat16 support.
"""

from __future__ import annotations

import functools
import os
import platform

import torch

from ..core import ConfigError

__all__ = [
    "FASTEST",
    "CPU_BF16_ENV",
    "bf16_support",
    "fastest_training_precision",
    "fastest_network_precision",
    "describe_fastest",
]

FASTEST = "fastest"
CPU_BF16_ENV = "PRIMEBENCH_CPU_BF16"


@functools.cache
def _cpu_units() -> tuple[str, ...]:
    """The CPU's units that compute bfloat16 natively, as torch's CPU probes report them."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        probes = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
        return tuple(name for name, probe in probes if getattr(torch.cpu, probe, lambda: False)())
    # Arm: oneDNN's bfloat16 kernels are native with the BF16 extension, which this asks.
    if platform.machine().lower() in ("aarch64", "arm64"):
        return ("BF16",) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else ()
    return ()


def bf16_support() -> tuple[bool, str]:
    """(native, why): whether this process's device computes bfloat16 natively (the
    CUDA device when there is one, else the CPU), and the reason in words."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        # Without emulation: a GPU before Ampere "supports" bfloat16 only through float32.
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{name} computes bfloat16"
        return False, f"{name} has no bfloat16 units"
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise ConfigError(f"{CPU_BF16_ENV}: expected 0 or 1, got {forced!r}")
        return forced == "1", f"{CPU_BF16_ENV}={forced}"
    units = _cpu_units()
    if units:
        return True, f"the CPU has {' and '.join(units)}"
    return False, "the CPU computes bfloat16 only through float32 (no AVX512-BF16, AMX or BF16)"


def fastest_training_precision() -> str:
    """Lightning's precision for ``train.precision: fastest``: bf16-mixed or 32-true."""
    return "bf16-mixed" if bf16_support()[0] else "32-true"


def fastest_network_precision() -> str:
    """A network precision setting's value for ``fastest``: bfloat16 or float32."""
    return "bfloat16" if bf16_support()[0] else "float32"


def describe_fastest() -> str:
    """One line for benchmarks and logs: what ``fastest`` picks here, and why."""
    native, why = bf16_support()
    return f"fastest precision here: {'bfloat16' if native else 'float32'} ({why})"
