"""Peak memory of CPU work: resident-set high-water mark, or the torch profiler.

On Linux the kernel's high-water mark of the resident set (VmHWM) can be reset by
writing 5 to /proc/self/clear_refs; the peak of a call is then VmHWM after it minus the
resident set before it. Large tensors are mapped and unmapped directly by the allocator,
so this follows live tensor memory, temporaries freed inside an op included. Elsewhere
the profiler's per-op memory records are summed in time order (an op's temporaries
that it frees itself are not seen).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

__all__ = ["peak_cpu_bytes"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise KeyError(field)


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_cpu_bytes(fn: Callable[[], object], method: str = "rss") -> int:
    """Peak bytes of memory above the level before ``fn`` while ``fn`` runs.

    ``method="rss"`` (where available) sees every page the process touches, so other
    allocator activity adds a few MiB of noise; ``"profiler"`` counts only tensor
    allocations, attributed per op (exact for ops that keep what they allocate)."""
    gc.collect()
    if method == "rss" and _STATUS.exists() and _reset_high_water_mark():
        before = _status_bytes("VmRSS")
        fn()
        return max(0, _status_bytes("VmHWM") - before)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    deltas = sorted(
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.self_cpu_memory_usage != 0
    )
    current = peak = 0
    for _, delta in deltas:
        current += delta
        peak = max(peak, current)
    return peak
