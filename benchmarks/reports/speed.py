"""Sampling speed beside a sampler's numbers: samples/s and tokens/s, with the device.

Every sampler logs ``perf/samples_per_s`` and ``perf/tokens_per_s`` (an image task's
extra step counts with the suffix ``_steps<T>``, as its other sample metrics): the
samples over the wall time of the sampler calls summed over the ranks, so a rate per
device whatever the number of ranks, and tokens/s = samples/s x L. The card names the
device and the ranks. They are figures of the machine, not results: two rows compare
only when measured on one kind of device. The tables that report samples show them
beside NFE and the idle-step ratio, so that fewer network calls read as wall-clock time.
"""

from __future__ import annotations

import pandas as pd

from .cards import metric_card
from .tables import run_value

__all__ = [
    "SAMPLES_PER_S",
    "SPEED_NOTE",
    "TOKENS_PER_S",
    "device",
    "rate",
    "samples_per_s",
    "tokens_per_s",
]

SAMPLES_PER_S = "perf/samples_per_s"
TOKENS_PER_S = "perf/tokens_per_s"

SPEED_NOTE = (
    "samples/s and tokens/s: the samples (x L tokens) over the sampler calls' wall time "
    "summed over the ranks, i.e. per device (the device and the ranks in brackets); "
    "figures of the machine, not results: compare rows measured on one kind of device."
)


def rate(run: pd.Series, metric: str = SAMPLES_PER_S, suffix: str = "") -> float | None:
    """The run's value of a speed metric, or None where it has none (or NaN: no time)."""
    return run_value(run, f"metrics.{metric}{suffix}")


def _figure(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def device(card: dict) -> str:
    """``cuda:0`` or ``cuda:0, 4 ranks`` from a speed metric's card."""
    name = card.get("device") or "device not recorded"
    ranks = card.get("ranks")
    return f"{name}, {ranks} ranks" if isinstance(ranks, int) and ranks > 1 else str(name)


def samples_per_s(run: pd.Series, suffix: str = "") -> str:
    """``12.3 (cpu)``: samples/s with the device, or ``-``."""
    value = rate(run, SAMPLES_PER_S, suffix)
    if value is None:
        return "-"
    return f"{_figure(value)} ({device(metric_card(run, SAMPLES_PER_S + suffix))})"


def tokens_per_s(run: pd.Series, suffix: str = "") -> str:
    """``3,150``: tokens/s (the device is the samples/s cell's), or ``-``."""
    value = rate(run, TOKENS_PER_S, suffix)
    return "-" if value is None else _figure(value)
