"""Training throughput of the image models, in images per second, in float32 and under
bfloat16 autocast, so that the image budget of an experiment is visible before it runs.

MDM (ell = 1) and MDM-Prime (ell = 2) on the Fashion-MNIST shape (28 x 28 x 1, C = 256)
or the CIFAR-10 shape (32 x 32 x 3), with the U-Net preset given. Optimizer steps
(forward and backward, then AdamW) alternate between the models and the precisions step
by step, so that a slow phase of the machine hits all of them alike; the median over
steps is printed with the quartiles, the steps that a training budget of ``--budget``
seconds buys, the bfloat16 / float32 ratio of paired steps, and the precision that the
suite's ``fastest`` setting picks on this machine (:mod:`benchmarks.config.precision`).

    python -m benchmarks.perf.image_train --batch 32 --steps 10
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.config.precision import describe_fastest
from benchmarks.config.validation import build_dataclass
from benchmarks.core import DataSpec
from benchmarks.registry import MODELS

from .text_step import step_times

SHAPES = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
PRECISIONS = ("float32", "bfloat16")


def build(name: str, preset: str, data: DataSpec, **params) -> torch.nn.Module:
    entry = MODELS.get(name)
    torch.manual_seed(0)
    model_params = {"schedule": "polynomial", "backbone": {"name": "unet", "preset": preset}}
    cfg = build_dataclass(entry.Params, {**model_params, **params}, "model")
    return entry.build(cfg, data)


class Autocast(torch.nn.Module):
    """``model`` whose training loss is computed under bfloat16 autocast (the backward
    pass and the optimizer step stay outside it, as in Lightning's bf16-mixed)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def training_loss(self, x0: torch.Tensor, generator: torch.Generator | None = None):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model.training_loss(x0, generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "cpu-patch", "paper"])
    parser.add_argument("--dataset", default="fashion-mnist", choices=sorted(SHAPES))
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training")
    parser.add_argument("--precision", default="both", choices=[*PRECISIONS, "both"])
    args = parser.parse_args()

    shape = SHAPES[args.dataset]
    dims = shape[0] * shape[1] * shape[2]
    data = DataSpec(num_classes=256, seq_len=dims, image_shape=shape)
    precisions = PRECISIONS if args.precision == "both" else (args.precision,)
    models = {}
    for precision in precisions:
        for label, name, params in (
            ("MDM", "mdm", {}),
            ("MDM-Prime l=2", "prime", {"ell": 2, "carry_over": False}),
        ):
            model = build(name, args.preset, data, **params).train()
            models[label, precision] = Autocast(model) if precision == "bfloat16" else model
    x0 = torch.randint(0, 256, (args.batch, dims), generator=torch.Generator().manual_seed(0))
    print(
        f"U-Net {args.preset}, {args.dataset} {shape}, batch {args.batch}, "
        f"{args.steps} steps each, {torch.get_num_threads()} threads"
    )
    times = step_times(models, x0, args.steps)
    print(
        f"{'model':<14} {'precision':<9} {'params':>8} {'s/step':>8} {'IQR':>15} "
        f"{'images/s':>9} {'steps':>7}"
    )
    for (label, precision), ts in times.items():
        params = sum(p.numel() for p in models[label, precision].parameters())
        q1, median, q3 = statistics.quantiles(ts, n=4)
        print(
            f"{label:<14} {precision:<9} {params / 1e6:7.2f}M {median:8.3f} "
            f"{q1:7.3f}-{q3:<7.3f} {args.batch / median:9.1f} {int(args.budget / median):7d}"
        )
    for precision in precisions:
        mdm, prime = times["MDM", precision], times["MDM-Prime l=2", precision]
        ratio = statistics.median(b / a for a, b in zip(mdm, prime, strict=True))
        print(f"Prime l=2 / MDM step time, {precision} (median of paired steps): {ratio:.3f}")
    if len(precisions) == 2:
        for label in ("MDM", "MDM-Prime l=2"):
            pairs = zip(times[label, "float32"], times[label, "bfloat16"], strict=True)
            ratio = statistics.median(b / a for a, b in pairs)
            print(f"{label}: bfloat16 / float32 step time (median of paired steps): {ratio:.3f}")
    print(describe_fastest())


if __name__ == "__main__":
    main()
