"""Training-step time and peak memory of MDLM-Prime (ell = 4) against MDLM, and the
tokenization throughput of the text pipeline.

Both models use the same DiT and the GPT-2 vocabulary (C = 50257); Prime's extra work is
the carry-over restriction and the sub-token marginals of the valid bound. Target
ratios (PRIME_SPEC, issue): step time <= 1.10, peak memory <= 1.10.

    python -m benchmarks.perf.text_step --preset cpu --batch 4 --seq-len 256 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.config import build_dataclass
from benchmarks.models import MODELS
from benchmarks.tasks.base import DataSpec

from .memory import peak_cpu_bytes


def build(name: str, preset: str, data: DataSpec, **params) -> torch.nn.Module:
    entry = MODELS.get(name)
    torch.manual_seed(0)
    cfg = build_dataclass(
        entry.Params, {"backbone": {"name": "dit", "preset": preset}, **params}, "model"
    )
    return entry.build(cfg, data)


def step_times(
    model: torch.nn.Module, x0: torch.Tensor, steps: int, warmup: int = 2
) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss, _ = model.training_loss(x0, gen)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def tokenization_throughput() -> tuple[float, float]:
    """(MB/s, documents) of GPT-2 tokenization + wrapping on the Shakespeare corpus."""
    from benchmarks.data.text import TextSource, tokenized_blocks
    from benchmarks.data.tokenizers import get_tokenizer
    from benchmarks.tasks.text import _shakespeare_dataset

    docs = _shakespeare_dataset("train")
    megabytes = sum(len(t.encode()) for t in docs["text"]) / 1e6
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        tokenized_blocks(
            TextSource("shakespeare", "bench"),
            get_tokenizer("gpt2"),
            1024,
            documents=docs,
            cache_dir=Path(cache),
        )
        elapsed = time.perf_counter() - start
    return megabytes / elapsed, megabytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=["cpu", "tiny", "small"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ell", type=int, default=4)
    args = parser.parse_args()

    data = DataSpec(num_classes=50257, seq_len=args.seq_len)
    x0 = torch.randint(
        0, 50257, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(1)
    )
    models = {
        "MDLM": build("mdm", args.preset, data),
        f"Prime l={args.ell}": build("prime", args.preset, data, ell=args.ell, carry_over=True),
    }
    print(
        f"DiT preset {args.preset}, C=50257, B={args.batch}, L={args.seq_len}, "
        f"{args.steps} timed steps after 2 warm-up steps, {torch.get_num_threads()} threads"
    )
    print(f"{'model':<12} {'median step s':>14} {'peak GiB':>9}")
    medians, peaks = {}, {}
    for name, model in models.items():
        medians[name] = statistics.median(step_times(model, x0, args.steps))

        def one_step(model=model) -> None:
            loss, _ = model.training_loss(x0, torch.Generator().manual_seed(0))
            loss.backward()
            model.zero_grad(set_to_none=True)

        peaks[name] = peak_cpu_bytes(one_step)
        print(f"{name:<12} {medians[name]:>14.3f} {peaks[name] / 2**30:>9.3f}")
    base, prime = models
    print(
        f"ratio Prime/MDLM: step time {medians[prime] / medians[base]:.3f}, "
        f"peak memory {peaks[prime] / peaks[base]:.3f} (target <= 1.10 each)"
    )
    mbps, mb = tokenization_throughput()
    print(f"GPT-2 tokenization + wrapping: {mbps:.2f} MB/s on {mb:.1f} MB of text")


if __name__ == "__main__":
    main()
