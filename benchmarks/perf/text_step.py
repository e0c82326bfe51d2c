"""Training-step time and peak memory of MDLM-Prime (ell = 4) against MDLM, and the
tokenization throughput of the text pipeline.

Both models use the same DiT and the GPT-2 vocabulary (C = 50257); Prime's extra work is
the carry-over restriction (the published objective) and also the sub-token marginals
(the valid bound), both from one pass of ``prime.grid_softmax``. Steps alternate between
the models in rounds; medians are printed. Targets: step time <= 1.05 and peak memory
<= 1.10 of MDLM's.

    python -m benchmarks.perf.text_step --preset cpu --batch 2 --seq-len 1024 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.config.validation import build_dataclass
from benchmarks.core import DataSpec
from benchmarks.data.corpora import shakespeare_dataset
from benchmarks.data.text import tokenized_blocks
from benchmarks.data.text_sources import TextSource
from benchmarks.data.tokenizers import get_tokenizer
from benchmarks.registry import MODELS

from .memory import peak_cpu_bytes


def build(name: str, preset: str, data: DataSpec, **params) -> torch.nn.Module:
    entry = MODELS.get(name)
    torch.manual_seed(0)
    cfg = build_dataclass(
        entry.Params, {"backbone": {"name": "dit", "preset": preset}, **params}, "model"
    )
    return entry.build(cfg, data)


def step_times(
    models: dict[str, torch.nn.Module], x0: torch.Tensor, steps: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds per optimizer step of each model, the models taking turns step by step
    (so that a slow phase of the machine hits all of them alike)."""
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    gens = {name: torch.Generator().manual_seed(0) for name in models}
    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(warmup + steps):
        for name, model in models.items():
            start = time.perf_counter()
            loss, _ = model.training_loss(x0, gens[name])
            loss.backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def tokenization_throughput() -> tuple[float, float]:
    """(MB/s, documents) of GPT-2 tokenization + wrapping on the Shakespeare corpus."""
    docs = shakespeare_dataset("train")
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
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ell", type=int, default=4)
    args = parser.parse_args()

    data = DataSpec(num_classes=50257, seq_len=args.seq_len)
    x0 = torch.randint(
        0, 50257, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(1)
    )
    prime = dict(ell=args.ell, carry_over=True)
    models = {
        "MDLM": build("mdm", args.preset, data),
        f"Prime l={args.ell}": build("prime", args.preset, data, **prime, objective="published"),
        f"Prime l={args.ell} valid": build("prime", args.preset, data, **prime, objective="valid"),
    }
    print(
        f"DiT preset {args.preset}, C=50257, B={args.batch}, L={args.seq_len}, "
        f"{args.steps} timed steps after 2 warm-up steps, {torch.get_num_threads()} threads"
    )
    print(
        f"{'model':<16} {'median step s':>14} {'peak GiB':>9} {'time/MDLM':>10} {'peak/MDLM':>10}"
    )
    medians = {
        name: statistics.median(ts) for name, ts in step_times(models, x0, args.steps).items()
    }
    peaks = {}
    for name, model in models.items():

        def one_step(model=model) -> None:
            loss, _ = model.training_loss(x0, torch.Generator().manual_seed(0))
            loss.backward()
            model.zero_grad(set_to_none=True)

        peaks[name] = peak_cpu_bytes(one_step)
    for name in models:
        print(
            f"{name:<16} {medians[name]:>14.3f} {peaks[name] / 2**30:>9.3f} "
            f"{medians[name] / medians['MDLM']:>10.3f} {peaks[name] / peaks['MDLM']:>10.3f}"
        )
    print("targets: time/MDLM <= 1.05, peak/MDLM <= 1.10")
    mbps, mb = tokenization_throughput()
    print(f"GPT-2 tokenization + wrapping: {mbps:.2f} MB/s on {mb:.1f} MB of text")


if __name__ == "__main__":
    main()
