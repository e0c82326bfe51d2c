"""An evaluation's work as numbered shards, split over the ranks and kept on disk.

A stage (the likelihood passes, one set of samples, the Inception features of those
samples) is ``count`` shards; shard i is computed by rank i mod R of R ranks, from
inputs and random streams that depend on i alone, so that the shards, and every number
pooled from them in index order, are those of one process. Each finished shard is
written (atomically) to ``<root>/<stage>/<i>.npz``; a stopped evaluation resumes by
computing only the shards that are missing. A stage records what its shards are of
(``stage.json``: the model scored, the settings) and a stage found with another record
is started over, never mixed.

A *sequential* stage (one random stream through all shards, e.g. samples drawn from a
single generator) is computed by the main rank alone, in order; each shard keeps the
stream's state after it, from which a resumed stage continues.

Without a root (an evaluation outside the runner), shards live in memory and a world
of one computes them all.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..safe_files import atomic_write, check_not_symlink, ensure_directory, read_nofollow
from .ranks import EvalRanks

__all__ = ["Sharding", "Stage", "Arrays", "sharding_of"]

Arrays = dict[str, np.ndarray]
_RECORD = "stage.json"


class Sharding:
    """Where an evaluation keeps its shards (``root``; None: in memory) and which rank
    computes which. ``model``: what is scored (a run id and step, a file's sha256), part
    of every stage's record."""

    def __init__(self, root: Path | None = None, ranks: EvalRanks | None = None, model: str = ""):
        self.root, self.ranks, self.model = root, ranks or EvalRanks(), model
        if root is None and self.ranks.size > 1:
            raise ValueError("an evaluation over several ranks keeps its shards on disk")

    def child(self, name: str, model: str | None = None) -> Sharding:
        """The shards of a sub-evaluation (e.g. one checkpoint of a curve)."""
        root = None if self.root is None else self.root / _safe(name)
        return Sharding(root, self.ranks, self.model if model is None else model)

    def stage(self, name: str, settings: dict[str, Any]) -> Stage:
        """The stage ``name`` of shards computed with ``settings`` (JSON values)."""
        return Stage(self, name, {"stage": name, "model": self.model, **settings})


class Stage:
    """One stage's shards; see the module docstring. Every rank creates the same stages
    in the same order (creating one is a meeting of the ranks)."""

    def __init__(self, sharding: Sharding, name: str, record: dict[str, Any]):
        self.ranks = sharding.ranks
        self.name = name
        self._memory: dict[int, Arrays] = {}
        self.dir: Path | None = None
        if sharding.root is not None:
            self.dir = sharding.root / _safe(name)
            if self.ranks.is_main:
                _prepare(self.dir, record)
            self.ranks.wait_all()  # no rank reads a stage the main rank is resetting

    def _path(self, index: int) -> Path:
        assert self.dir is not None
        return self.dir / f"{index:06d}.npz"

    def done(self, index: int) -> bool:
        if self.dir is None:
            return index in self._memory
        return self._path(index).is_file()

    def todo(self, index: int, sequential: bool = False) -> bool:
        """Whether this rank computes shard ``index`` now: it is this rank's (the main
        rank's for a sequential stage) and not yet done."""
        owner = 0 if sequential else self.ranks.owner(index)
        return owner == self.ranks.rank and not self.done(index)

    def save(self, index: int, arrays: Arrays) -> None:
        """Keep shard ``index``; then stop here if the evaluation was signalled."""
        if self.dir is None:
            self._memory[index] = {k: np.asarray(v) for k, v in arrays.items()}
        else:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            with atomic_write(self._path(index), f"evaluation shard ({self.name})") as out:
                out.write(buffer.getvalue())
        self.ranks.shard_saved(self.name, index)

    def load(self, index: int) -> Arrays:
        if self.dir is None:
            return self._memory[index]
        path = self._path(index)
        with np.load(io.BytesIO(read_nofollow(path, "evaluation shard")), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def gather(self, count: int) -> list[Arrays]:
        """Every shard 0..count-1, in order, on every rank, once all ranks are done."""
        self.ranks.wait_all()
        missing = [i for i in range(count) if not self.done(i)]
        if missing:
            raise RuntimeError(
                f"evaluation stage {self.name}: shard(s) {missing[:5]} missing after every "
                "rank finished (the run directory must be shared by the job's nodes)"
            )
        return [self.load(i) for i in range(count)]

    def resume_point(self, count: int) -> tuple[int, Arrays | None]:
        """For a sequential stage: the number k of shards done in a row from 0, and the
        last of them (None when k = 0); a shard past a gap is computed again."""
        k = 0
        while k < count and self.done(k):
            k += 1
        return k, (self.load(k - 1) if k else None)


def sharding_of(ctx: Any) -> Sharding:
    """The sharding of an evaluation context (``EvalContext.sharding``; in memory and one
    rank when it has none, as for a task evaluated outside the runner)."""
    sharding = getattr(ctx, "sharding", None)
    return sharding if sharding is not None else Sharding()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", name)


def _prepare(directory: Path, record: dict[str, Any]) -> None:
    """Make ``directory`` a stage of ``record``: kept if it is one already, else (a stage
    of another model or settings) emptied first."""
    text = json.dumps(record, sort_keys=True, default=str)
    ensure_directory(directory.parent, "evaluation progress directory")
    path = directory / _RECORD
    if directory.exists():
        check_not_symlink(directory, "evaluation stage directory")
        try:
            same = read_nofollow(path, "evaluation stage record").decode() == text
        except (OSError, UnicodeDecodeError):
            same = False
        if same:
            return
        shutil.rmtree(directory)  # shards of something else: never to be mixed in
    ensure_directory(directory, "evaluation stage directory")
    with atomic_write(path, "evaluation stage record") as out:
        out.write(text.encode())
