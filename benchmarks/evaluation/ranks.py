"""The ranks of one evaluation and their meeting point.

Every rank of a job evaluates (the same code path, in the same order). They share no
tensors: a rank's results are the shards it writes to the run directory, which every
node of a cluster sees (the checkpoints live there too), and the others read them after
:meth:`EvalRanks.wait_all`. The meeting point is a TCP key-value store beside the job's
port, hosted by the main rank. Its barrier polls rather than blocks, so that a rank
that has finished its share still reacts to a signal while the others work, and a stop
one rank records reaches the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from ..runtime.distributed import World
from .signals import EvaluationSignals

__all__ = ["EvalRanks", "evaluation_ranks", "STORE_PORT_OFFSET"]

# The job's port is Lightning's; +1 is the run decision's store (benchmarks.runtime.distributed).
STORE_PORT_OFFSET = 2
_WAIT = timedelta(days=30)  # no rank gives up on another: the job's time limit decides
_POLL_S = 0.2
_STOP_KEY = "evaluation/stop"


@dataclass
class EvalRanks:
    """This process's place among the ``size`` ranks that share an evaluation."""

    rank: int = 0
    size: int = 1
    signals: EvaluationSignals | None = None
    store: Any = None
    _barriers: int = field(default=0, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owner(self, index: int) -> int:
        """The rank that computes shard ``index`` (round robin)."""
        return index % self.size

    def check(self) -> None:
        """Stop if this rank was signalled (telling the others) or another rank was."""
        if self.signals is None:
            return
        mine = self.signals.report()
        elsewhere = None
        try:
            if mine is not None and self.store is not None:
                self.store.set(_STOP_KEY, mine)
            if self.store is not None and self.store.check([_STOP_KEY]):
                elsewhere = self.store.get(_STOP_KEY).decode()
        except (RuntimeError, dist.DistError) as gone:
            self.signals.raise_if_stopped()  # our own stop explains it
            raise RuntimeError(
                f"rank {self.rank}: the main rank left the evaluation ({gone})"
            ) from None
        self.signals.raise_if_stopped(elsewhere)

    def shard_saved(self, stage: str, index: int) -> None:
        """After shard ``index`` of ``stage`` is kept: stop here if signalled."""
        if self.signals is not None:
            self.signals.shard_saved(stage, index)
        self.check()

    def wait_all(self) -> None:
        """Return once every rank has reached this call (the n-th call of each rank
        meets the n-th of the others); a signal meanwhile stops the evaluation."""
        self._barriers += 1
        if self.size == 1:
            self.check()
            return
        self._meet(f"evaluation/barrier/{self._barriers}", self.size)
        self.check()

    def _meet(self, key: str, count: int) -> None:
        self.store.add(key, 1)
        while int(self.store.add(key, 0)) < count:
            self.check()
            time.sleep(_POLL_S)

    def close(self) -> None:
        """The last meeting: the main rank, whose process hosts the store, leaves only
        after every other rank has stopped using it."""
        if self.size == 1:
            return
        self.wait_all()
        if self.is_main:
            while int(self.store.add("evaluation/left", 0)) < self.size - 1:
                time.sleep(_POLL_S)
        else:
            self.store.add("evaluation/left", 1)


def evaluation_ranks(world: World, signals: EvaluationSignals | None) -> EvalRanks:
    """The evaluation's ranks of ``world``, with its store (none for a world of one)."""
    if world.size == 1:
        return EvalRanks(signals=signals)
    store = dist.TCPStore(
        world.main_address,
        world.main_port + STORE_PORT_OFFSET,
        world.size,
        is_master=world.is_main,
        timeout=_WAIT,
        wait_for_workers=False,
    )
    return EvalRanks(world.rank, world.size, signals, store)
