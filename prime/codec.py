"""The sub-token codec f: tokens in {0..C-1} <-> ell base-b digits (docs/method.md §2).

    b      = min { b in N : b**ell >= C }                  (integer search, no float roots)
    f(x)_j = floor(x / b**(ell-j)) mod b,  j = 1..ell       (most-significant digit first)
    f^-1(d) = sum_j d_j * b**(ell-j)

A noised sub-token takes values in {0..b-1} U {m}; the mask id is ``m = b``. When
b**ell > C the codes C..b**ell-1 are *invalid*: they never occur in data, a joint decoder
over the C tokens cannot produce them, an independent per-digit decoder can.

The consistent set of a partially masked token y = (y_1..y_ell) is

    V(y) = { x in {0..C-1} : for all j, y_j = m or f(x)_j = y_j }.

It is computed from ell lookup tables ``T_j`` of shape (b+1, C), ``T_j[v, x] = [f(x)_j = v]``
for v < b and ``T_j[m, x] = 1``, AND-ed row by row, in chunks of positions, so that at most
one boolean (..., C) tensor is ever allocated (never a float (..., C) per digit, never a
(..., C, ell) tensor). For large bases (ell = 1 has b = C) the tables would be huge, and
the digits are compared directly instead.
"""

from __future__ import annotations

import torch

__all__ = ["SubTokenizer", "smallest_base"]


def smallest_base(num_classes: int, ell: int) -> int:
    """Smallest integer b >= 2 with b**ell >= num_classes (exact integer arithmetic)."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(ell, int) or ell < 1:
        raise ValueError(f"ell must be an integer >= 1, got {ell!r}")
    b = max(2, int(round(num_classes ** (1.0 / ell))) - 1)
    while b**ell < num_classes:
        b += 1
    while b > 2 and (b - 1) ** ell >= num_classes:
        b -= 1
    return b


class SubTokenizer:
    """Base-b codec between C token classes and ell sub-tokens per token.

    Args:
        num_classes: C, the number of token classes.
        ell: number of sub-tokens per token (ell = 1 is plain MDM / MDLM).
        device: where the lookup tables live; they follow ``.to(device)``.

    Attributes:
        base: b, the sub-token alphabet size; the mask sub-token id is ``mask_id = b``.
        digits: LongTensor (C, ell), ``digits[x] = f(x)``.
    """

    def __init__(self, num_classes: int, ell: int, device: torch.device | str | None = None):
        self.num_classes = num_classes
        self.ell = ell
        self.base = smallest_base(num_classes, ell)
        self.mask_id = self.base
        self.num_codes = self.base**ell
        self.num_invalid_codes = self.num_codes - num_classes
        # Place values b**(ell-1), ..., b, 1 (MSD first).
        self._place = torch.tensor(
            [self.base ** (ell - 1 - j) for j in range(ell)], dtype=torch.long, device=device
        )
        self.digits = self._digits_of(torch.arange(num_classes, device=device))
        self._tables: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"SubTokenizer(num_classes={self.num_classes}, ell={self.ell}, base={self.base})"

    @property
    def device(self) -> torch.device:
        return self._place.device

    def to(self, device: torch.device | str) -> SubTokenizer:
        """Move the lookup tables to ``device`` (in place); returns self."""
        self._place = self._place.to(device)
        self.digits = self.digits.to(device)
        if self._tables is not None:
            self._tables = self._tables.to(device)
        return self

    def _digits_of(self, x: torch.Tensor) -> torch.Tensor:
        return torch.div(x.unsqueeze(-1), self._place, rounding_mode="floor") % self.base

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f: tokens (...,) in [0, C) -> digits (..., ell) in [0, b), MSD first."""
        x = torch.as_tensor(x, device=self.device)
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise TypeError(f"encode expects integer token ids, got dtype {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_classes):
            raise ValueError(
                f"token ids must lie in [0, {self.num_classes}); got range "
                f"[{int(x.min())}, {int(x.max())}]"
            )
        return self._digits_of(x.long())

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """f^-1: digits (..., ell) in [0, b) -> codes (...,) in [0, b**ell).

        A code >= C is returned as is (it is *invalid*); see :meth:`is_valid`.
        """
        y = torch.as_tensor(y, device=self.device)
        if y.shape[-1:] != (self.ell,):
            raise ValueError(
                f"decode expects a last dimension of ell={self.ell}, got {tuple(y.shape)}"
            )
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.base):
            raise ValueError(
                f"digits must lie in [0, {self.base}) (unmasked); got range "
                f"[{int(y.min())}, {int(y.max())}]"
            )
        return (y.long() * self._place).sum(-1)

    def is_valid(self, codes: torch.Tensor) -> torch.Tensor:
        """Boolean mask of codes that are real tokens (code < C)."""
        return codes < self.num_classes

    @property
    def tables(self) -> torch.Tensor:
        """Bool (ell, b+1, C): ``tables[j, v, x] = [v == m or f(x)_j == v]``."""
        if self._tables is None:
            b, c = self.base, self.num_classes
            t = torch.zeros(self.ell, b + 1, c, dtype=torch.bool, device=self.device)
            cols = torch.arange(c, device=self.device)
            for j in range(self.ell):
                t[j, self.digits[:, j], cols] = True
            t[:, b, :] = True
            self._tables = t
        return self._tables

    def _chunk_rows(self, chunk_size: int | None) -> int:
        # Default: about 4 MiB of temporary booleans per chunk.
        return chunk_size if chunk_size is not None else max(1, (1 << 22) // self.num_classes)

    def consistent_mask(
        self, y_t: torch.Tensor, out: torch.Tensor | None = None, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Bool (..., C): which tokens agree with every revealed digit of ``y_t``.

        Args:
            y_t: (..., ell) noised sub-tokens in [0, b] (b = mask).
            out: optional preallocated bool (..., C) to fill.
            chunk_size: number of token positions handled per chunk; bounds the
                temporary memory to ``chunk_size * C`` booleans (default: ~4 MiB).
        """
        if y_t.shape[-1] != self.ell:
            raise ValueError(f"y_t must end in ell={self.ell}, got shape {tuple(y_t.shape)}")
        lead = y_t.shape[:-1]
        flat = y_t.reshape(-1, self.ell)
        if out is None:
            out = torch.empty(*lead, self.num_classes, dtype=torch.bool, device=y_t.device)
        out_flat = out.view(-1, self.num_classes)
        # Lookup tables pay off when small; for large bases (ell = 1: b = C, a C x C
        # table) compare digits directly instead.
        tables = self.tables if self.ell * (self.base + 1) * self.num_classes <= 2**26 else None
        chunk_size = self._chunk_rows(chunk_size)
        for start in range(0, flat.shape[0], chunk_size):
            rows = flat[start : start + chunk_size]
            block = out_flat[start : start + chunk_size]
            for j in range(self.ell):
                if j == 0:
                    block.copy_(self._digit_match(tables, rows, 0))
                else:
                    block &= self._digit_match(tables, rows, j)
        return out

    def _digit_match(self, tables: torch.Tensor | None, rows: torch.Tensor, j: int) -> torch.Tensor:
        """Bool (rows, C): digit j of each token agrees with rows[:, j] (or it is masked)."""
        if tables is not None:
            return tables[j][rows[:, j]]
        column = rows[:, j : j + 1]
        return (self.digits[:, j] == column) | (column == self.mask_id)

    def restrict_logits_(
        self, logits: torch.Tensor, y_t: torch.Tensor, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Carry-over restriction, in place: logits of tokens outside V(y_t) become -inf.

        ``logits`` (..., C) float, ``y_t`` (..., ell). Works chunk by chunk so no
        full-size temporary is allocated at all. Returns ``logits``.
        """
        if logits.shape[:-1] != y_t.shape[:-1] or logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"logits {tuple(logits.shape)} and y_t {tuple(y_t.shape)} disagree "
                f"(expected logits (..., {self.num_classes}) over the positions of y_t)"
            )
        if not logits.is_contiguous():
            raise ValueError("restrict_logits_ works in place and needs contiguous logits")
        flat_logits = logits.view(-1, self.num_classes)
        flat_y = y_t.reshape(-1, self.ell)
        chunk_size = self._chunk_rows(chunk_size)
        for start in range(0, flat_y.shape[0], chunk_size):
            rows = flat_y[start : start + chunk_size]
            keep = self.consistent_mask(rows, chunk_size=chunk_size)
            flat_logits[start : start + chunk_size].masked_fill_(keep.logical_not_(), float("-inf"))
        return logits
