"""Sampling speed of the image models (cpu U-Net preset, Fashion-MNIST shape), with the
network's calls in float32 and under bfloat16 autocast (as ``task.sample_precision``),
and the precision that the suite's ``fastest`` setting picks on this machine.

    python -m benchmarks.perf.image_sampling --batch 32 --steps 16
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.config.precision import describe_fastest
from benchmarks.config.validation import build_dataclass
from benchmarks.core import DataSpec
from benchmarks.registry import MODELS
from prime import SamplerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "cpu-patch", "paper"])
    args = parser.parse_args()

    data = DataSpec(num_classes=256, seq_len=784, image_shape=(1, 28, 28))
    backbone = {"name": "unet", "preset": args.preset}
    variants = {
        "MDM": ("mdm", {"schedule": "polynomial", "backbone": backbone}),
        "MDM-Prime l=2": ("prime", {"ell": 2, "schedule": "polynomial", "backbone": backbone}),
    }
    print(
        f"U-Net {args.preset}, 28x28x1, batch {args.batch}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads"
    )
    for label, (name, params) in variants.items():
        entry = MODELS.get(name)
        torch.manual_seed(0)
        model = entry.build(build_dataclass(entry.Params, params, "model"), data).eval()
        rates = {}
        for precision in ("float32", "bfloat16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                warm_up = SamplerConfig(steps=2)
                model.sample(2, 784, warm_up, generator=torch.Generator().manual_seed(0))
                config = SamplerConfig(steps=args.steps, proposal="subtoken")
                gen = torch.Generator().manual_seed(1)
                start = time.perf_counter()
                result = model.sample(args.batch, 784, config, generator=gen)
                rates[precision] = args.batch / (time.perf_counter() - start)
            print(
                f"{label:<14} {precision:<9} {rates[precision]:7.2f} images/s  (NFE {result.nfe})"
            )
        print(
            f"{label:<14} bfloat16 / float32 images/s: {rates['bfloat16'] / rates['float32']:.2f}"
        )
    print(describe_fastest())


if __name__ == "__main__":
    main()
