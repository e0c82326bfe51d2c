"""Peak memory of CPU tensor allocations, from the torch profiler."""

from __future__ import annotations

from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_cpu_bytes"]


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """Peak of (bytes allocated - bytes freed) by CPU tensor ops while ``fn`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Allocations are attributed to the op that made them, frees to "[memory]" events.
    deltas = sorted(
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.name == "[memory]" or e.self_cpu_memory_usage > 0
    )
    current = peak = 0
    for _, delta in deltas:
        current += delta
        peak = max(peak, current)
    return peak
