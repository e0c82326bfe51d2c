"""A given first token: BD3-LM's ``ignore_bos``.

With it, position 0 of every sequence is never masked, in training, in evaluation and
in sampling, and carries no loss: the model is trained and scored on

    -log p(x_1..x_{L-1} | x_0),

so a likelihood per token divides by L - 1. bd3lms applies it whatever its rows begin
with (with ``insert_*_special`` False position 0 is the first text token: it is given
all the same), and starts every sample from the BOS id at position 0.
"""

from __future__ import annotations

import torch

from prime import PrimeLosses

__all__ = ["FirstTokenGiven", "give_first", "unscore_first"]


def give_first(y_t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
    """y_t (B, L, ell) with position 0 set to the clean sub-tokens of y0 (a new tensor)."""
    y_t = y_t.clone()
    y_t[:, 0] = y0[:, 0]
    return y_t


def unscore_first(losses: PrimeLosses) -> PrimeLosses:
    """Per-token losses (B, L) with position 0's set to 0 (graph kept for training)."""

    def drop(value: torch.Tensor | None) -> torch.Tensor | None:
        if value is None:
            return None
        first = torch.arange(value.shape[1], device=value.device) == 0
        return value.masked_fill(first, 0.0)

    return PrimeLosses(*(drop(value) for value in losses))


class FirstTokenGiven:
    """Mixin of a :class:`prime.MaskedDiffusion` subclass with attributes ``ignore_bos``
    (bool) and ``bos_id`` (int or None): with ``ignore_bos`` its losses see position 0
    given and score 0 there, whatever y_t they are handed, and samples start from
    ``bos_id``."""

    ignore_bos: bool = False
    bos_id: int | None = None

    def losses(
        self,
        x0: torch.Tensor,
        t: torch.Tensor,
        y_t: torch.Tensor,
        which: tuple[str, ...] = ("published", "valid_bound"),
    ) -> PrimeLosses:
        """The per-token losses of the model (B, L); with ``ignore_bos`` position 0 is
        set clean first (as bd3lms sets it after masking, diffusion.py:843-844) and its
        losses are 0 (left out of its NLL, diffusion.py:884-885)."""
        if not self.ignore_bos:
            return super().losses(x0, t, y_t, which)
        y_t = give_first(y_t, self.codec.encode(x0))
        return unscore_first(super().losses(x0, t, y_t, which))

    def first_token(self) -> int | None:
        """The token sampling fixes at position 0: ``bos_id`` with ``ignore_bos``, else
        None (position 0 is sampled)."""
        if not self.ignore_bos:
            return None
        if self.bos_id is None:
            raise ValueError("ignore_bos: samples start from a BOS token, but bos_id is None")
        return self.bos_id
