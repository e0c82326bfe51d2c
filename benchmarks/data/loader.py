"""The training input pipeline: step-seeded global batches, sharded over ranks.

Optimizer step s draws its global batch of G rows from a generator seeded by (run seed,
s) alone: G row indices (uniform with replacement, or by the source's weights) and one
63-bit salt per row for augmentation; with ``order = "epoch_permutation"`` the indices
are instead positions [s G, (s + 1) G) of per-epoch permutations seeded by (run seed,
epoch) (:mod:`benchmarks.data.row_order`). With W ranks and A micro-batches of
m = G / (W A) rows per rank, micro-batch a of rank r takes rows [(a W + r) m,
(a W + r + 1) m) of that draw. So

* the global batch of a step is the same on 1 process, 8 GPUs or 2 CPU ranks, and a run
  resumed on a different number of devices continues with the same data order;
* within a step no row of the draw is taken twice or skipped;
* resuming needs only the step to start from (checkpointed as the sampler position).

The sampler runs in the main process and hands each batch's indices to the DataLoader's
workers, which read the rows (memory-mapped files are reopened in each worker, never
pickled whole) while the previous step trains.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..runtime.preemption import WARNING_SIGNAL
from .row_order import ROW_ORDERS, EpochPermutations

__all__ = [
    "TrainRows",
    "ArrayRows",
    "GridRows",
    "StepBatch",
    "StepSampler",
    "draw_global_batch",
    "draw_salts",
    "training_loader",
]

SALT_BITS = 63


class TrainRows(Protocol):
    """Where training rows come from: ``len`` rows, optional sampling weights, and the
    (n, L) integer tokens of given row indices (with a per-row salt for augmentation),
    in the narrowest dtype that holds them: they cross from loader workers and to the
    device that way, and training widens them to int64 there. An optional ``order``
    attribute names how steps take rows (:data:`ROW_ORDERS`; absent: "replacement")."""

    def __len__(self) -> int: ...

    def weights(self) -> torch.Tensor | None: ...

    def get(self, indices: np.ndarray, salts: np.ndarray) -> torch.Tensor: ...


class ArrayRows:
    """Rows of an (N, ...) integer array, flattened to (n, L) (uint16 ids as int32, the
    narrowest that torch moves everywhere); a memory-mapped ``.npy`` array travels to
    loader workers as its path and is reopened there. ``order``: how training steps
    take the rows (:class:`StepSampler`)."""

    def __init__(self, array: np.ndarray, order: str = "replacement"):
        if order not in ROW_ORDERS:
            raise ValueError(f"row order must be one of {', '.join(ROW_ORDERS)}, got {order!r}")
        self.order = order
        self._array: np.ndarray | None = array
        filename = getattr(array, "filename", None)
        self._path = str(filename) if isinstance(array, np.memmap) and filename else None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_array"] = None
        return state

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self._path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def weights(self) -> torch.Tensor | None:
        return None

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The rows ``indices`` in that order (read in file order, for locality)."""
        order = np.argsort(indices, kind="stable")
        out = np.empty((len(indices), *self.array.shape[1:]), dtype=self.array.dtype)
        out[order] = self.array[indices[order]]
        return out

    def get(self, indices: np.ndarray, salts: np.ndarray) -> torch.Tensor:
        rows = self.read(indices)
        if rows.dtype == np.uint16:
            rows = rows.astype(np.int32)
        return torch.from_numpy(rows).flatten(1)


class GridRows:
    """The cells of an R x R pmf as training rows (x, y), drawn with the pmf as weights
    (the 2-D toy: an infinite sample from a known distribution)."""

    def __init__(self, pmf: torch.Tensor):
        self.pmf = pmf

    def __len__(self) -> int:
        return self.pmf.numel()

    def weights(self) -> torch.Tensor:
        return self.pmf.flatten()

    def get(self, indices: np.ndarray, salts: np.ndarray) -> torch.Tensor:
        flat = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        r = self.pmf.shape[1]
        return torch.stack([flat // r, flat % r], dim=-1)


@dataclass(frozen=True)
class StepBatch:
    """The key of one micro-batch: rows [row_start, row_start + len) of step ``step``."""

    step: int
    micro: int
    row_start: int
    global_size: int
    indices: np.ndarray
    salts: np.ndarray


def draw_global_batch(
    num_rows: int, size: int, seed: int, weights: torch.Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, salts) of one global batch of ``size`` rows from a generator seeded ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    if weights is None:
        idx = torch.randint(0, num_rows, (size,), generator=gen)
    else:
        idx = torch.multinomial(weights, size, replacement=True, generator=gen)
    salts = torch.randint(0, 2**SALT_BITS - 1, (size,), generator=gen)
    return idx.numpy(), salts.numpy()


def draw_salts(size: int, seed: int) -> np.ndarray:
    """The ``size`` salts of a global batch whose rows are not drawn (epoch permutations)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2**SALT_BITS - 1, (size,), generator=gen).numpy()


class StepSampler(Sampler[StepBatch]):
    """Endless micro-batch keys for one rank, from optimizer step ``start_step`` on.

    Args:
        num_rows: rows of the source; weights: optional sampling weights (num_rows,).
        global_batch: G, rows per optimizer step over all ranks.
        micro_batch: m, rows per micro-batch; accumulation: A, micro-batches per step.
        rank, world_size: this rank r of W; G must equal m A W.
        seed_of_step: the generator seed of a step's draw.
        order: "replacement" (the step's draw) or "epoch_permutation" (the step's
            positions of per-epoch permutations seeded ``seed_of_epoch(e)``; no weights).
    """

    def __init__(
        self,
        num_rows: int,
        global_batch: int,
        micro_batch: int,
        accumulation: int,
        rank: int,
        world_size: int,
        seed_of_step: Any,
        weights: torch.Tensor | None = None,
        order: str = "replacement",
        seed_of_epoch: Callable[[int], int] | None = None,
    ):
        if micro_batch * accumulation * world_size != global_batch:
            raise ValueError(
                f"{micro_batch} rows x {accumulation} micro-batches x {world_size} ranks "
                f"!= global batch {global_batch}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if num_rows < 1:
            raise ValueError("the training data has no rows")
        if order not in ROW_ORDERS:
            raise ValueError(f"row order must be one of {', '.join(ROW_ORDERS)}, got {order!r}")
        self.epochs = None
        if order == "epoch_permutation":
            if weights is not None or seed_of_epoch is None:
                raise ValueError("epoch permutations need unweighted rows and seed_of_epoch")
            self.epochs = EpochPermutations(num_rows, seed_of_epoch)
        self.num_rows, self.global_batch = num_rows, global_batch
        self.micro_batch, self.accumulation = micro_batch, accumulation
        self.rank, self.world_size = rank, world_size
        self.seed_of_step, self.weights = seed_of_step, weights
        self.start_step = 0  # set from the checkpoint before iteration starts

    def state_dict(self) -> dict[str, int]:
        return {"start_step": self.start_step, "global_batch": self.global_batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["global_batch"] != self.global_batch:
            raise ValueError(
                f"checkpoint was trained with global batch {state['global_batch']}, "
                f"this run has {self.global_batch}"
            )
        self.start_step = int(state["start_step"])

    def global_batch_rows(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, salts) of the G rows of step ``step``, over all ranks."""
        seed = self.seed_of_step(step)
        if self.epochs is None:
            return draw_global_batch(self.num_rows, self.global_batch, seed, self.weights)
        return self.epochs.global_batch(step, self.global_batch), draw_salts(
            self.global_batch, seed
        )

    def __iter__(self) -> Iterator[StepBatch]:
        m, w = self.micro_batch, self.world_size
        for step in itertools.count(self.start_step):
            idx, salts = self.global_batch_rows(step)
            for micro in range(self.accumulation):
                lo = (micro * w + self.rank) * m
                yield StepBatch(
                    step, micro, lo, self.global_batch, idx[lo : lo + m], salts[lo : lo + m]
                )


class _KeyedRows(Dataset):
    """Map-style view of a :class:`TrainRows` whose keys are whole :class:`StepBatch` es."""

    def __init__(self, rows: TrainRows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, key: StepBatch) -> dict[str, Any]:
        return {
            "x0": self.rows.get(key.indices, key.salts),
            "step": key.step,
            "micro": key.micro,
            "row_start": key.row_start,
            "global_size": key.global_size,
        }


def _as_is(batch: Any) -> Any:
    return batch


def _worker_signals(worker_id: int) -> None:
    """A worker forked from the training process inherits its signal handlers: the
    scheduler's (submitit would requeue the job from the worker and exit it) and the
    training loop's. The warning signal and Ctrl-C reach the workers too (Slurm signals
    every process of the step; a terminal, the whole process group): the main process
    handles them and stops the workers, so they ignore them; SIGTERM ends a worker."""
    signal.signal(WARNING_SIGNAL, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def training_loader(
    rows: TrainRows,
    sampler: StepSampler,
    workers: int,
    prefetch_factor: int,
    pin_memory: bool,
) -> DataLoader:
    """A DataLoader over ``rows`` driven by ``sampler`` (workers > 0: background reads)."""
    return DataLoader(
        _KeyedRows(rows),
        batch_sampler=sampler,
        collate_fn=_as_is,
        num_workers=workers,
        prefetch_factor=prefetch_factor if workers > 0 else None,
        persistent_workers=False,
        pin_memory=pin_memory,
        worker_init_fn=_worker_signals if workers > 0 else None,
    )
