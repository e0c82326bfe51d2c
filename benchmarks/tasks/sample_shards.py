"""A sampler call's results as an evaluation shard, and the sampling speed pooled over them.

A shard keeps what the statistics of the task need (not the final sub-tokens): the
decoded codes (in the smallest unsigned type that holds them), the idle transitions
per sequence, the call's NFE and T, the draws rejected before it and its wall time.

Speed, pooled over the calls (whichever rank made them): samples per second = the
samples over the seconds of the calls, tokens per second = that times L. It is a
figure of the device named on its card, with the NFE and idle steps beside it, so that
"fewer idle steps" reads as wall-clock time; it is logged under ``perf/`` (not a result:
two machines differ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from prime import SampleResult

from ..core import Metric
from ..evaluation.shards import Arrays

__all__ = ["DrawnBatch", "batch_arrays", "speed_metrics"]


def _compact(tokens: torch.Tensor) -> np.ndarray:
    values = tokens.cpu().numpy()
    for dtype in (np.uint8, np.uint16, np.int32):
        if values.size == 0 or (values.min() >= 0 and values.max() <= np.iinfo(dtype).max):
            return values.astype(dtype)
    return values.astype(np.int64)


def batch_arrays(result: SampleResult, rejected: int, seconds: float) -> Arrays:
    """The shard of one sampler call."""
    return {
        "tokens": _compact(result.tokens),
        "idle_steps": result.idle_steps.cpu().numpy().astype(np.int64),
        "nfe": np.asarray(result.nfe, dtype=np.int64),
        "num_steps": np.asarray(result.num_steps, dtype=np.int64),
        "num_classes": np.asarray(result.num_classes, dtype=np.int64),
        "rejected": np.asarray(rejected, dtype=np.int64),
        "seconds": np.asarray(seconds, dtype=np.float64),
    }


@dataclass(frozen=True)
class DrawnBatch:
    """One sampler call, read back from its shard."""

    tokens: torch.Tensor
    """(B, L) decoded codes (int64); >= num_classes is invalid."""
    idle_steps: torch.Tensor
    """(B,) idle transitions per sequence."""
    nfe: int
    num_steps: int
    num_classes: int
    rejected: int
    seconds: float

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> DrawnBatch:
        return cls(
            tokens=torch.from_numpy(arrays["tokens"].astype(np.int64)),
            idle_steps=torch.from_numpy(arrays["idle_steps"]),
            nfe=int(arrays["nfe"]),
            num_steps=int(arrays["num_steps"]),
            num_classes=int(arrays["num_classes"]),
            rejected=int(arrays["rejected"]),
            seconds=float(arrays["seconds"]),
        )

    @property
    def idle_ratio(self) -> torch.Tensor:
        """(B,) idle-step ratio per sequence: idle_steps / T (as ``SampleResult``)."""
        return self.idle_steps.double() / self.num_steps

    @property
    def valid(self) -> torch.Tensor:
        return self.tokens < self.num_classes


def speed_metrics(
    batches: list[DrawnBatch], card: dict, device: torch.device, ranks: int, suffix: str = ""
) -> list[Metric]:
    """perf/samples_per_s{suffix} and perf/tokens_per_s{suffix} of the sampler calls."""
    seconds = sum(b.seconds for b in batches)
    samples = sum(b.tokens.shape[0] for b in batches)
    length = batches[0].tokens.shape[1]
    rate = samples / seconds if seconds > 0 else float("nan")
    c = {
        **card,
        "device": str(device),
        "ranks": ranks,
        "per": "device (the calls' wall time summed over the ranks)",
        "sampler_calls": len(batches),
        "nfe_per_call": sum(b.nfe for b in batches) / len(batches),
        "idle_ratio": float(torch.cat([b.idle_ratio for b in batches]).mean()),
    }
    return [
        Metric(f"perf/samples_per_s{suffix}", rate, c),
        Metric(f"perf/tokens_per_s{suffix}", rate * length, {**c, "tokens_per_sample": length}),
    ]
