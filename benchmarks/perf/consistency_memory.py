"""Peak memory and time of the carry-over consistency check (docs/method.md §5.2).

Compares ``SubTokenizer.consistent_mask`` / ``restrict_logits_`` against the accumulator
of the released code (a float (B, L, C) count of matching digits, one float (B, L, C)
lookup per digit), on the GPT-2 vocabulary.

    python -m benchmarks.perf.consistency_memory --batch 16 --seq-len 1024 --ell 4
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from prime import SubTokenizer

from .memory import peak_cpu_bytes


def accumulator_mask(codec: SubTokenizer, y_t: torch.Tensor) -> torch.Tensor:
    """The released code's approach: sum float row lookups, compare the count with ell."""
    table = codec.tables.float()  # (ell, b+1, C)
    count = torch.zeros(*y_t.shape[:-1], codec.num_classes)
    for j in range(codec.ell):
        count += table[j][y_t[..., j]]
    return count == codec.ell


def seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--num-classes", type=int, default=50257)
    parser.add_argument("--ell", type=int, default=4)
    args = parser.parse_args()

    codec = SubTokenizer(args.num_classes, args.ell)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, args.num_classes, (args.batch, args.seq_len), generator=g)
    keep = torch.rand(args.batch, args.seq_len, args.ell, generator=g) < 0.5
    y_t = torch.where(keep, codec.encode(x0), codec.mask_id)
    _ = codec.tables  # built once per codec

    assert torch.equal(codec.consistent_mask(y_t), accumulator_mask(codec, y_t))
    logits = torch.randn(args.batch, args.seq_len, args.num_classes, generator=g)
    full_bool = args.batch * args.seq_len * args.num_classes
    gib = 2.0**30
    rows = [
        ("released accumulator", lambda: accumulator_mask(codec, y_t)),
        ("consistent_mask", lambda: codec.consistent_mask(y_t)),
        ("restrict_logits_ (in place)", lambda: codec.restrict_logits_(logits, y_t)),
    ]
    print(
        f"B={args.batch} L={args.seq_len} C={args.num_classes} ell={args.ell} b={codec.base}; "
        f"one bool (B, L, C) = {full_bool / gib:.2f} GiB"
    )
    print(f"{'method':<30} {'peak GiB':>9} {'x bool':>7} {'median s':>9}")
    for name, fn in rows:
        peak = peak_cpu_bytes(fn)
        print(f"{name:<30} {peak / gib:>9.3f} {peak / full_bool:>7.2f} {seconds(fn):>9.3f}")


if __name__ == "__main__":
    main()
