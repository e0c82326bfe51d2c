"""Redrawing a batch of samples that degenerates, as BD3-LM's sampler does (task.sample_retry).

``none``: every draw is kept. ``bd3lms``: the rule of kuleshov-group/bd3lms at 1c3e8f4,
which its sampling script runs (``sampling.var_length`` False, configs/config.yaml:30):

* after each finished block whose end e (tokens 0..e-1 drawn) exceeds W = 256
  (diffusion.py:1044-1046), the empirical entropy in nats of the token values at
  positions [e - W, e), all rows of the batch pooled (diffusion.py:1054-1057, 1073),

      H = -sum_v p_v ln p_v,   p_v = #{(row, i): x[row, i] = v} / (rows * W),

  is compared with 4 (diffusion.py:1074-1075); H < 4 at any such end rejects the whole
  batch, which is drawn again from the start (diffusion.py:1047-1049, 671-677). Without
  var_length no EOS is looked at (diffusion.py:1079-1090 only with it), and no sample
  stops early;
* at most 10 draws per batch: bd3lms raises 'Sampling failed.' after the 11th call
  whatever it returned (diffusion.py:672-679), so an 11th draw is never kept; here the
  10th rejected draw raises an error naming the setting;
* NFE: the accepted draw's calls only; the rejected draws' are not counted
  (diffusion.py:680-682, metrics.py:35-36: a mean over the kept batches). So are the
  idle steps and every other statistic.

bd3lms checks after each block and abandons a failing draw there; here the draw runs to
its end and every block end is checked after it. The same draws are kept and rejected
(the test reads only tokens drawn before the end it checks); a rejected draw costs more
network calls and random numbers, which are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from prime import SampleResult

__all__ = [
    "MAX_DRAWS",
    "MIN_ENTROPY",
    "WINDOW",
    "SampleRetry",
    "draw_accepted",
    "first_low_entropy_end",
    "window_entropy",
]

SampleRetry = Literal["none", "bd3lms"]
WINDOW = 256
MIN_ENTROPY = 4.0
MAX_DRAWS = 10


def window_entropy(tokens: torch.Tensor) -> float:
    """Entropy in nats of the empirical law of the values in ``tokens`` (any shape,
    all entries pooled), in float32 as bd3lms computes it."""
    _, counts = torch.unique(tokens, return_counts=True)
    p = counts.float() / counts.sum()
    return float(torch.special.entr(p).sum())


def first_low_entropy_end(tokens: torch.Tensor, block_size: int) -> int | None:
    """The first block end e > WINDOW of (B, L) ``tokens`` whose window [e - WINDOW, e)
    has entropy below MIN_ENTROPY (the rows pooled), or None when there is none."""
    seq_len = tokens.shape[1]
    ends = [min(start + block_size, seq_len) for start in range(0, seq_len, block_size)]
    for end in ends:
        if end > WINDOW and window_entropy(tokens[:, end - WINDOW : end]) < MIN_ENTROPY:
            return end
    return None


def draw_accepted(
    draw: Callable[[], SampleResult], retry: SampleRetry, block_size: int
) -> tuple[SampleResult, int]:
    """(the first draw that ``retry`` keeps, how many were rejected before it);
    ``block_size``: the model's L' (the whole sequence for a model without blocks)."""
    if retry == "none":
        return draw(), 0
    if retry != "bd3lms":
        raise ValueError(f"task.sample_retry: expected none or bd3lms, got {retry!r}")
    ends = []
    for _ in range(MAX_DRAWS):
        result = draw()
        end = first_low_entropy_end(result.tokens, block_size)
        if end is None:
            return result, len(ends)
        ends.append(end)
    raise RuntimeError(
        f"task.sample_retry = bd3lms: all {MAX_DRAWS} draws of a batch were rejected "
        f"(token entropy below {MIN_ENTROPY} nats in the last {WINDOW} tokens before the "
        f"block ends {ends}); bd3lms stops there too ('Sampling failed.'). Set "
        "task.sample_retry: none to keep every draw"
    )
