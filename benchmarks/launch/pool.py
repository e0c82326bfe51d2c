"""A pool of local jobs: at most ``parallel`` at once, the next one started as soon as a
slot frees (rather than in waves, where the slowest run of each wave idles the others).

The pool knows nothing of runs: ``start(item)`` returns a handle with ``done()`` and
``collect(handle)`` returns its result or raises. Every item is attempted even when
others fail, until ``stop()`` says to start no more; the outcomes come back in the
items' order, each with its wall-clock span, so that a caller can report how long each
part of a sweep took when parts overlap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Outcome", "run_pool", "span"]

T = TypeVar("T")


class Handle(Protocol):
    def done(self) -> bool: ...


@dataclass
class Outcome(Generic[T]):
    """What became of one item: its result or its error, and when it ran
    (``time.perf_counter`` seconds)."""

    item: T
    result: Any = None
    error: BaseException | None = None
    started: float = 0.0
    ended: float = 0.0
    begun: bool = False  # false: never started (the pool was told to stop first)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def span(outcomes: Sequence[Outcome]) -> float:
    """Wall seconds from the first start to the last end of ``outcomes`` (0 if none)."""
    ran = [o for o in outcomes if o.begun]
    if not ran:
        return 0.0
    return max(o.ended for o in ran) - min(o.started for o in ran)


def run_pool(
    items: Sequence[T],
    parallel: int,
    start: Callable[[T], Handle],
    collect: Callable[[Handle], Any],
    *,
    fatal: tuple[type[BaseException], ...] = (),
    on_start: Callable[[int, T, Handle], None] | None = None,
    on_end: Callable[[Outcome[T]], None] | None = None,
    stop: Callable[[], bool] | None = None,
    poll_s: float = 0.5,
) -> list[Outcome[T]]:
    """Run ``items`` at most ``parallel`` at a time, in their order; return their outcomes.

    An exception of ``collect`` is kept in the item's outcome, except one of ``fatal``
    (an interruption of the whole sweep), which propagates at once; so does any exception
    of ``start``, since nothing started after it would be waited for. Once ``stop()`` is
    true no further item starts (their outcomes keep ``begun`` false) and the running
    ones are waited for.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    outcomes = [Outcome(item) for item in items]
    running: dict[int, Handle] = {}
    queued = list(range(len(items)))
    while queued or running:
        while queued and len(running) < parallel:
            if stop is not None and stop():
                queued.clear()
                break
            index = queued.pop(0)
            outcomes[index].started = time.perf_counter()
            outcomes[index].begun = True
            running[index] = start(items[index])
            if on_start is not None:
                on_start(index, items[index], running[index])
        finished = [i for i, handle in running.items() if handle.done()]
        if not finished:
            time.sleep(poll_s)
            continue
        for index in finished:
            handle = running.pop(index)
            outcome = outcomes[index]
            try:
                outcome.result = collect(handle)
            except fatal:
                raise
            except Exception as err:  # noqa: BLE001 - kept for the caller to report together
                outcome.error = err
            outcome.ended = time.perf_counter()
            if on_end is not None:
                on_end(outcome)
    return outcomes
