"""Documents -> fixed-length token blocks ("wrap" mode of MDLM-style text pipelines).

Each document is followed by EOS (or not, ``doc_eos=False``: BD3-LM's
``insert_valid_eos=False`` data) and the documents are concatenated into a stream. The
stream is cut into bodies of ``b`` tokens; a block is the body alone (``specials=False``,
b = L) or [BOS] + body + [EOS] (``specials=True``, b = L - 2), for L = ``block_size``.

Grouping (``group_docs`` = g):

* g = 0: the whole split is one stream; only its final tail (< b tokens) is dropped, so
  N = floor(T / b) blocks for T tokens (documents plus their EOS).
* g > 0: documents [k g, (k + 1) g) form group k, each group is its own stream and its
  tail is dropped: N = sum_k floor(T_k / b), and no block holds tokens of two groups.
  This is what ``datasets.Dataset.map(batched=True)`` does with its default batch of
  1000 documents when the group function concatenates and cuts one batch (g = 1000),
  in one process. With ``num_proc`` = P > 1, ``map`` first splits the N_d documents
  into P contiguous shards (shard i holds documents [i q + min(i, r), ...) with
  q, r = divmod(N_d, P), q + 1 of them for i < r) and counts batches of 1000 from the
  start of each shard: the groups restart at every shard boundary, and each shard's
  last group is short. Those boundaries depend on the machine's CPU count; here the
  groups are consecutive g-document batches of the whole split, P = 1's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["block_count", "wrap_blocks"]

_FLUSH_ROWS = 4096  # rows cut per flush of a long stream: bounds the pending tokens


def _body(block_size: int, specials: bool) -> int:
    if block_size < (3 if specials else 1):
        raise ValueError(
            f"block_size must be >= {3 if specials else 1} "
            f"({'with' if specials else 'without'} BOS/EOS), got {block_size}"
        )
    return block_size - 2 if specials else block_size


def _check_group(group_docs: int) -> None:
    if group_docs < 0:
        raise ValueError(f"group_docs must be >= 0 (0: one stream), got {group_docs}")


def block_count(
    doc_tokens: Sequence[int] | np.ndarray,
    block_size: int,
    group_docs: int = 0,
    specials: bool = True,
) -> int:
    """N, the blocks :func:`wrap_blocks` cuts from documents of ``doc_tokens`` tokens
    each (their EOS included, if any): floor(T / b), or sum over groups of floor(T_k / b)."""
    body = _body(block_size, specials)
    _check_group(group_docs)
    n = np.asarray(doc_tokens, dtype=np.int64)
    if group_docs == 0 or n.size == 0:
        return int(n.sum()) // body
    sums = np.add.reduceat(n, np.arange(0, n.size, group_docs))
    return int((sums // body).sum())


class _Rows:
    """Where cut blocks go: ``out`` row by row, or a list stacked at the end."""

    def __init__(self, out: np.ndarray | None, block_size: int, bos: int, eos: int, sp: bool):
        self.out, self.row, self.parts = out, 0, []
        self.block_size, self.bos, self.eos, self.specials = block_size, bos, eos, sp
        if out is not None and (out.ndim != 2 or out.shape[1] != block_size):
            raise ValueError(f"out must have shape (N, {block_size}), got {out.shape}")

    def cut(self, pending: list[np.ndarray], body: int) -> np.ndarray:
        """Write the whole bodies of ``pending``; return the rest of the stream."""
        stream = np.concatenate(pending) if pending else np.empty(0, dtype=np.int64)
        rows = len(stream) // body
        bodies = stream[: rows * body].reshape(rows, body)
        if self.specials:
            block = np.empty((rows, self.block_size), dtype=np.int64)
            block[:, 0], block[:, -1], block[:, 1:-1] = self.bos, self.eos, bodies
        else:
            block = bodies
        if self.out is None:
            self.parts.append(block)
        else:
            if self.row + rows > self.out.shape[0]:
                raise ValueError(f"out has {self.out.shape[0]} rows; the documents give more")
            self.out[self.row : self.row + rows] = block
        self.row += rows
        return stream[rows * body :]

    def result(self) -> np.ndarray:
        if self.out is None:
            if not self.parts:
                return np.empty((0, self.block_size), dtype=np.int64)
            return np.concatenate(self.parts)
        if self.row != self.out.shape[0]:
            raise ValueError(f"out has {self.out.shape[0]} rows; the documents give {self.row}")
        return self.out


def wrap_blocks(
    token_lists: Iterable[Sequence[int]],
    block_size: int,
    bos_id: int,
    eos_id: int,
    *,
    group_docs: int = 0,
    specials: bool = True,
    doc_eos: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Blocks of documents, each followed by EOS, per the module docstring.

    Args:
        token_lists: per-document token id lists, in document order.
        block_size: L, tokens per block.
        group_docs: g, documents per group (0: the whole split is one stream).
        specials: [BOS] + L - 2 tokens + [EOS] per block (True) or L tokens (False).
        doc_eos: an EOS after each document (True) or the documents' tokens alone.
        out: an (N, L) array to fill, N = :func:`block_count` of the documents (e.g. a
            memory map): the documents stream through without the corpus in memory.

    Returns:
        (N, L) blocks, in stream order.
    """
    body = _body(block_size, specials)
    _check_group(group_docs)
    rows = _Rows(out, block_size, bos_id, eos_id, specials)
    eos = np.array([eos_id] if doc_eos else [], dtype=np.int64)
    pending: list[np.ndarray] = []
    pending_len = 0
    for i, tokens in enumerate(token_lists, 1):
        pending += [np.asarray(tokens, dtype=np.int64), eos]
        pending_len += len(tokens) + len(eos)
        if group_docs and i % group_docs == 0:
            rows.cut(pending, body)  # the group's tail is dropped
            pending, pending_len = [], 0
        elif pending_len >= _FLUSH_ROWS * body:
            rest = rows.cut(pending, body)
            pending, pending_len = [rest], len(rest)
    rows.cut(pending, body)
    return rows.result()
