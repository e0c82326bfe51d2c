"""Training-step time of BD3-LM (the 2L-position pass over x_t and x_0) against MDLM at
equal sequence length, and where the time goes.

Both models use the same DiT; BD3-LM runs every layer on 2L positions under the block
mask and the output head on the L noised ones only. Expected: about 2x or less (the
per-token matmuls double, attention quadruples, the head and the loss stay). The op
profile splits one step into attention, the per-token matmuls, the output softmax /
loss and the rest.

    python -m benchmarks.perf.block_step --batch 4 --seq-len 256 --vocab 256 --steps 10
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.core import DataSpec

from .text_step import build, step_times

# Profiler op names -> where the time goes (self time, forward and backward).
CATEGORIES = {
    "attention": ("scaled_dot_product", "_efficient_attention", "_flash_attention", "attention"),
    "matmuls": ("addmm", "aten::mm", "bmm", "linear", "matmul"),
    "softmax / loss": ("softmax", "nll_loss", "gather", "logsumexp", "scatter"),
}


def category(op: str) -> str:
    for name, keys in CATEGORIES.items():
        if any(key in op for key in keys):
            return name
    return "other"


def time_split(model: torch.nn.Module, x0: torch.Tensor, steps: int) -> dict[str, float]:
    """Seconds per step by category (self CPU time of the profiled ops)."""
    gen = torch.Generator().manual_seed(0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            loss, _ = model.training_loss(x0, gen)
            loss.backward()
            model.zero_grad(set_to_none=True)
    out: dict[str, float] = {}
    for event in prof.key_averages():
        key = category(event.key)
        out[key] = out.get(key, 0.0) + event.self_cpu_time_total / 1e6 / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=["cpu", "tiny", "small"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=256, help="256: bytes; 50257: GPT-2")
    parser.add_argument("--block", type=int, default=4, help="BD3-LM block size L'")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternated timing rounds")
    args = parser.parse_args()

    data = DataSpec(num_classes=args.vocab, seq_len=args.seq_len)
    x0 = torch.randint(
        0, args.vocab, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(1)
    )
    models = {
        "MDLM": build("mdm", args.preset, data),
        f"BD3-LM L'={args.block}": build("bd3lm", args.preset, data, block_size=args.block),
    }
    print(
        f"DiT preset {args.preset}, C={args.vocab}, B={args.batch}, L={args.seq_len}, "
        f"{args.rounds} alternated rounds of {args.steps} timed steps, "
        f"{torch.get_num_threads()} threads"
    )
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):  # alternate, so drifts of a shared machine hit both
        for name, model in models.items():
            times[name] += step_times(model, x0, args.steps)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base, hybrid = models
    print(f"{'model':<14} {'median step s':>14}")
    for name in models:
        print(f"{name:<14} {medians[name]:>14.3f}")
    print(f"ratio BD3-LM / MDLM step time: {medians[hybrid] / medians[base]:.2f} (expect <= ~2)")

    profiled = max(2, args.steps // 2)
    splits = {name: time_split(model, x0, profiled) for name, model in models.items()}
    print(f"\nwhere the time goes (profiled self time, s per step; ratio {hybrid} / MDLM)")
    print(f"{'part':<16} {base:>10} {hybrid:>14} {'ratio':>7}")
    for part in (*CATEGORIES, "other"):
        a, b = splits[base].get(part, 0.0), splits[hybrid].get(part, 0.0)
        ratio = f"{b / a:.2f}" if a > 0 else "-"
        print(f"{part:<16} {a:>10.3f} {b:>14.3f} {ratio:>7}")


if __name__ == "__main__":
    main()
