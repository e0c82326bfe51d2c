"""Sampling speed of the image models (cpu U-Net preset, Fashion-MNIST shape), and the
FID feature extraction speed beside it.

    python -m benchmarks.perf.image_sampling --batch 32 --steps 16
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.core import DataSpec
from benchmarks.registry import MODELS
from benchmarks.validation import build_dataclass
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
        warm_up = SamplerConfig(steps=2)
        model.sample(2, 784, warm_up, generator=torch.Generator().manual_seed(0))
        config = SamplerConfig(steps=args.steps, proposal="subtoken")
        start = time.perf_counter()
        result = model.sample(args.batch, 784, config, generator=torch.Generator().manual_seed(1))
        elapsed = time.perf_counter() - start
        print(f"{label:<14} {args.batch / elapsed:7.2f} images/s  (NFE {result.nfe})")


if __name__ == "__main__":
    main()
