"""What a reverse sampler returns, and where it starts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..codec import SubTokenizer

__all__ = ["SampleResult", "initial_state"]


@dataclass
class SampleResult:
    """Samples with the sampler's bookkeeping.

    Attributes:
        tokens: (B, L) decoded codes f^-1(y); may be >= C (invalid) for decoders
            without carry-over.
        subtokens: (B, L, ell) final sub-tokens, none masked.
        idle_steps: (B,) idle transitions per sequence among the ``num_steps``.
        batch_idle_steps: transitions where no sub-token in the batch changed.
        nfe: number of denoiser calls, the final step included.
        num_steps: T.
        num_classes: C, to tell valid from invalid codes.
    """

    tokens: torch.Tensor
    subtokens: torch.Tensor
    idle_steps: torch.Tensor
    batch_idle_steps: int
    nfe: int
    num_steps: int
    num_classes: int

    @property
    def idle_ratio(self) -> torch.Tensor:
        """(B,) idle-step ratio per sequence: idle_steps / T."""
        return self.idle_steps.double() / self.num_steps

    @property
    def valid(self) -> torch.Tensor:
        """(B, L) bool: which decoded codes are real tokens (< C)."""
        return self.tokens < self.num_classes

    @property
    def invalid_rate(self) -> float:
        """Fraction of decoded tokens that are invalid codes (>= C)."""
        return float((~self.valid).double().mean())


def _check_prefix(prefix: torch.Tensor, batch_size: int, seq_len: int) -> torch.Tensor:
    prefix = torch.as_tensor(prefix)
    if prefix.dim() == 1:
        prefix = prefix.unsqueeze(0).expand(batch_size, -1)
    if prefix.dim() != 2 or prefix.shape[0] != batch_size or prefix.shape[1] > seq_len:
        raise ValueError(
            f"prefix must be (P,) or (batch_size={batch_size}, P) with P <= seq_len={seq_len}, "
            f"got shape {tuple(prefix.shape)}"
        )
    return prefix


def initial_state(
    codec: SubTokenizer,
    batch_size: int,
    seq_len: int,
    prefix: torch.Tensor | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """y (B, L, ell) all masked but for the ``prefix`` tokens, on ``device`` (default:
    the codec's)."""
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
    device = torch.device(device) if device is not None else codec.device
    shape = (batch_size, seq_len, codec.ell)
    y = torch.full(shape, codec.mask_id, dtype=torch.long, device=device)
    if prefix is not None:
        prefix = _check_prefix(prefix, batch_size, seq_len).to(device)
        y[:, : prefix.shape[1]] = codec.encode(prefix)
    return y
