"""FID feature extraction speed: torch-fidelity's extractor (batched tensor resize) against
clean-fid's "clean" pipeline (per-image PIL resize), same images, same network weights,
and the extractor under bf16 autocast, with the precision that the suite's ``fastest``
setting picks on this machine.

    python -m benchmarks.perf.fid_features --images 64 --batch 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.config.precision import describe_fastest
from benchmarks.metrics.fid import CleanFIDFeatures, InceptionFeatures


def images_per_second(extractor, images: np.ndarray) -> float:
    extractor(images[: min(4, len(images))])  # warm-up
    start = time.perf_counter()
    extractor(images)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="image side (CIFAR: 32)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 3, args.size, args.size), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as cache:
        ours = images_per_second(InceptionFeatures(Path(cache), batch_size=args.batch), images)
        extractor = InceptionFeatures(Path(cache), batch_size=args.batch, precision="bfloat16")
        bf16 = images_per_second(extractor, images)
    clean = images_per_second(CleanFIDFeatures(batch_size=args.batch), images)
    print(
        f"{args.images} images {args.size}x{args.size}, batch {args.batch}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"torch-fidelity extractor: {ours:.2f} images/s")
    print(f"clean-fid pipeline:       {clean:.2f} images/s")
    print(f"torch-fidelity in bf16:   {bf16:.2f} images/s ({bf16 / ours:.2f}x float32)")
    print(f"ratio ours / clean-fid:   {ours / clean:.2f} (target >= 1)")
    print(describe_fastest())


if __name__ == "__main__":
    main()
