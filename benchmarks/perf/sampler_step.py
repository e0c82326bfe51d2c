"""Reverse-sampling time per step of MDLM-Prime (ell = 4) against MDLM, and where it goes.

Both models use the same DiT preset and the GPT-2 vocabulary (C = 50257). Every step
runs the network (no caching), so the per-step time compares like with like. Each
step's time is split into the network call, the proposal draw (``prime.sampling.proposals.propose``,
the restricted draw down the digit grid at the positions the step reveals) and the rest
(reveal decisions, idle bookkeeping). Releasing the network's output is counted with
the network (see ``_Clock``). Targets: Prime / MDLM per step <= 1.10; the time
outside the network <= 10 % of a step.

    python -m benchmarks.perf.sampler_step --preset cpu --batch 2 --seq-len 1024 --steps 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import prime.sampling.sampler
from benchmarks.core import DataSpec

from .text_step import build

GPT2_VOCAB = 50257


class _Clock:
    """Accumulated seconds of wrapped calls. With ``owns_output`` the clock also keeps
    each call's output until the next call and releases it inside the timed region:
    unmapping a fresh (B, L, C) output costs ~30 ms at B = 2, L = 1024, and belongs to the
    network that allocated it, not to whoever drops the last reference."""

    def __init__(self, owns_output: bool = False) -> None:
        self.seconds = 0.0
        self.owns_output = owns_output
        self._last = None

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            self._last = None
            out = fn(*args, **kwargs)
            if self.owns_output:
                self._last = out
            self.seconds += time.perf_counter() - start
            return out

        return timed


def profile_sampling(model, args, seed: int) -> dict[str, float]:
    """Seconds per step: total, network, draw and rest, for one sampling run."""
    network, draw = _Clock(owns_output=True), _Clock()
    original = prime.sampling.sampler.propose
    prime.sampling.sampler.propose = draw.wrap(original)
    try:
        start = time.perf_counter()
        config = prime.SamplerConfig(steps=args.steps, carry_over=model.carry_over, use_cache=False)
        sampler = prime.Sampler(network.wrap(model), model.codec, config, schedule=model.schedule)
        result = sampler(args.batch, args.seq_len, generator=torch.Generator().manual_seed(seed))
        total = time.perf_counter() - start
    finally:
        prime.sampling.sampler.propose = original
    steps = result.nfe  # T steps plus the final noise removal, each one network call
    return {
        "total": total / steps,
        "network": network.seconds / steps,
        "draw": draw.seconds / steps,
        "rest": (total - network.seconds - draw.seconds) / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=["cpu", "tiny", "small"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--ell", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    data = DataSpec(num_classes=GPT2_VOCAB, seq_len=args.seq_len)
    models = {
        "MDLM": build("mdm", args.preset, data),
        f"Prime l={args.ell}": build("prime", args.preset, data, ell=args.ell, carry_over=True),
    }
    for model in models.values():
        model.eval()
    print(
        f"DiT preset {args.preset}, C={GPT2_VOCAB}, B={args.batch}, L={args.seq_len}, "
        f"T={args.steps} steps, no caching, {torch.get_num_threads()} threads, "
        f"medians of {args.rounds} alternated runs"
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    with torch.no_grad():
        for r in range(args.rounds):
            for name, model in models.items():
                runs[name].append(profile_sampling(model, args, seed=r))
    parts = ("total", "network", "draw", "rest")
    median = {
        name: {part: statistics.median(run[part] for run in rs) for part in parts}
        for name, rs in runs.items()
    }
    print(f"{'model':<12} " + " ".join(f"{p + ' s/step':>15}" for p in parts) + "  outside net")
    for name, m in median.items():
        outside = (m["draw"] + m["rest"]) / m["total"]
        print(f"{name:<12} " + " ".join(f"{m[p]:>15.4f}" for p in parts) + f"  {outside:>10.1%}")
    base, other = median
    ratio = median[other]["total"] / median[base]["total"]
    print(f"ratio {other}/{base} per step: {ratio:.3f} (target <= 1.10; outside <= 10 %)")


if __name__ == "__main__":
    main()
