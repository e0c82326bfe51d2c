"""Throughput of the training input pipeline at OpenWebText's shape.

A memory-mapped file of N token blocks of L = 1024 GPT-2 ids (uint16, as the text cache
writes it) is read through the step-seeded sampler and the DataLoader, one global batch
of G = 512 rows per step, split over W ranks (rank 0 measured), with 0 and k loader
workers. Each step also waits ``--compute-ms`` to stand for the training step that the
workers overlap with. Prints steps/s and tokens/s per rank, and the ratio of each
worker count to reading in the training process.

    python -m benchmarks.perf.input_pipeline [--blocks 50000] [--steps 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data.loader import ArrayRows, StepSampler, training_loader
from benchmarks.streams import step_seed


def _blocks(path: Path, n: int, length: int) -> np.ndarray:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(n, length))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        array[start:stop] = rng.integers(0, 50257, (stop - start, length), dtype=np.uint16)
    array.flush()
    del array
    return np.load(path, mmap_mode="r")


def measure(rows: ArrayRows, world: int, workers: int, steps: int, compute_s: float) -> float:
    """Median seconds per step on rank 0 (after two warm-up steps)."""
    sampler = StepSampler(len(rows), 512, 512 // world, 1, 0, world, lambda s: step_seed(0, s))
    loader = training_loader(rows, sampler, workers, 2, pin_memory=False)
    times, last = [], time.perf_counter()
    for i, batch in enumerate(loader):
        assert batch["x0"].shape == (512 // world, rows.array.shape[1])
        time.sleep(compute_s)
        now = time.perf_counter()
        if i >= 2:
            times.append(now - last)
        last = now
        if i + 1 >= steps + 2:
            break
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=50_000)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compute-ms", type=float, default=50.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = ArrayRows(_blocks(Path(tmp) / "blocks.npy", args.blocks, args.length))
        size_gb = args.blocks * args.length * 2 / 2**30
        print(
            f"{args.blocks} blocks x {args.length} tokens ({size_gb:.2f} GiB, memory-mapped),"
            f" global batch 512, {args.compute_ms:.0f} ms of compute per step"
        )
        header = ("ranks", "workers", "s/step", "tokens/s/rank", "vs 0 workers")
        print("{:>5} {:>7} {:>8} {:>14} {:>13}".format(*header))
        for world in (1, 8):
            base = None
            for workers in (0, args.workers):
                dt = measure(rows, world, workers, args.steps, args.compute_ms / 1000)
                base = base or dt
                tokens = 512 // world * args.length / dt
                print(f"{world:>5} {workers:>7} {dt:>8.4f} {tokens:>14,.0f} {base / dt:>12.2f}x")


if __name__ == "__main__":
    main()
