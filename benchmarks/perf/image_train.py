"""Training throughput of the image models, in images per second, so that the image
budget of an experiment is visible before it runs.

MDM (ell = 1) and MDM-Prime (ell = 2) on the Fashion-MNIST shape (28 x 28 x 1, C = 256)
or the CIFAR-10 shape (32 x 32 x 3), with the U-Net preset given. Optimizer steps
(forward and backward, under bf16 autocast with --precision bfloat16, then AdamW)
alternate between the models step by step, so that a slow phase of the machine hits
both alike; the median over steps is printed with the quartiles, and the steps that a
training budget of ``--budget`` seconds buys.

    python -m benchmarks.perf.image_train --batch 32 --steps 10
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.core import DataSpec
from benchmarks.registry import MODELS
from benchmarks.validation import build_dataclass

from .text_step import step_times

SHAPES = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def build(name: str, preset: str, data: DataSpec, **params) -> torch.nn.Module:
    entry = MODELS.get(name)
    torch.manual_seed(0)
    model_params = {"schedule": "polynomial", "backbone": {"name": "unet", "preset": preset}}
    cfg = build_dataclass(entry.Params, {**model_params, **params}, "model")
    return entry.build(cfg, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "cpu-patch", "paper"])
    parser.add_argument("--dataset", default="fashion-mnist", choices=sorted(SHAPES))
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    shape = SHAPES[args.dataset]
    dims = shape[0] * shape[1] * shape[2]
    data = DataSpec(num_classes=256, seq_len=dims, image_shape=shape)
    models = {
        "MDM": build("mdm", args.preset, data),
        "MDM-Prime l=2": build("prime", args.preset, data, ell=2, carry_over=False),
    }
    for model in models.values():
        model.train()
    x0 = torch.randint(0, 256, (args.batch, dims), generator=torch.Generator().manual_seed(0))
    print(
        f"U-Net {args.preset}, {args.dataset} {shape}, batch {args.batch}, "
        f"{args.steps} steps each, {args.precision}, {torch.get_num_threads()} threads"
    )
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bfloat16"):
        times = step_times(models, x0, args.steps)
    print(f"{'model':<14} {'params':>8} {'s/step':>8} {'IQR':>15} {'images/s':>9} {'steps':>7}")
    for label, ts in times.items():
        params = sum(p.numel() for p in models[label].parameters())
        q1, median, q3 = statistics.quantiles(ts, n=4)
        print(
            f"{label:<14} {params / 1e6:7.2f}M {median:8.3f} {q1:7.3f}-{q3:<7.3f} "
            f"{args.batch / median:9.1f} {int(args.budget / median):7d}"
        )
    first, second = times.values()
    ratio = statistics.median(b / a for a, b in zip(first, second, strict=True))
    print(f"Prime l=2 / MDM step time (median of paired steps): {ratio:.3f}")


if __name__ == "__main__":
    main()
