"""Training rows taken without replacement: one random permutation per epoch.

For N rows, epoch e has the permutation pi_e of range(N) that ``torch.randperm`` draws
from a generator seeded ``seed_of_epoch(e)``. The row order of the whole run is the
endless concatenation pi_0 pi_1 pi_2 ..., and optimizer step n with a global batch of G
rows takes its positions [n G, (n + 1) G). So

* over positions [e N, (e + 1) N) every row appears exactly once;
* a step's rows are a function of (n, G, N, the seeds) alone: a run resumed at any step,
  and every rank (each taking its shard of the step's G rows), sees the rows of an
  uninterrupted single-process run;
* a step that straddles positions e N (or G > N) takes the end of one permutation and
  the start of the next, so it can hold a row twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
import torch

__all__ = ["ROW_ORDERS", "EpochPermutations", "RowOrder"]

RowOrder = Literal["replacement", "epoch_permutation"]
"""How training steps take rows: drawn uniformly per step, or per-epoch permutations."""
ROW_ORDERS: tuple[str, ...] = get_args(RowOrder)


class EpochPermutations:
    """Rows at positions of pi_0 pi_1 ... (module docstring), the last permutations kept.

    Args:
        num_rows: N, rows per epoch.
        seed_of_epoch: the generator seed of epoch e's permutation.
    """

    def __init__(self, num_rows: int, seed_of_epoch: Callable[[int], int]):
        if num_rows < 1:
            raise ValueError("the training data has no rows")
        self.num_rows, self.seed_of_epoch = num_rows, seed_of_epoch
        self._cache: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        """pi_epoch, an (N,) int64 array (the two latest are kept: a step spans two)."""
        if epoch not in self._cache:
            gen = torch.Generator().manual_seed(self.seed_of_epoch(epoch))
            perm = torch.randperm(self.num_rows, generator=gen).numpy()
            self._cache = {e: p for e, p in self._cache.items() if e == epoch - 1}
            self._cache[epoch] = perm
        return self._cache[epoch]

    def rows(self, start: int, size: int) -> np.ndarray:
        """The (size,) rows at positions [start, start + size) of the concatenation."""
        if start < 0 or size < 0:
            raise ValueError(f"positions must be >= 0, got start {start}, size {size}")
        out = np.empty(size, dtype=np.int64)
        done = 0
        while done < size:
            epoch, offset = divmod(start + done, self.num_rows)
            take = min(size - done, self.num_rows - offset)
            out[done : done + take] = self.permutation(epoch)[offset : offset + take]
            done += take
        return out

    def global_batch(self, step: int, size: int) -> np.ndarray:
        """Step ``step``'s rows: positions [step size, (step + 1) size)."""
        return self.rows(step * size, size)
