"""Likelihood estimates over a fixed evaluation set, shared by the text and image tasks.

AR models: the exact next-token NLL. Masked diffusion models: the published estimator and
the valid bound, each averaged over Monte Carlo passes whose times are stratified over
the *whole* evaluation set (one stratum per sequence, or per block of a sequence for
block diffusion) from a fixed seed, over the full window [eps, 1], accumulated in
float64, with a standard error over sequences.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from baselines import AutoregressiveLM
from prime import MaskedDiffusion, mask_subtokens, sample_times

from ..core import Metric

__all__ = ["block_nll", "nll_metrics", "ESTIMATORS"]

ESTIMATORS = {
    "exact": "exact next-token NLL (autoregressive)",
    "valid_bound": "valid marginal bound (continuous-time NELBO)",
    "published": "published joint estimator (NOT a bound for ell > 1)",
}


@torch.no_grad()
def block_nll(
    model: torch.nn.Module,
    blocks: np.ndarray,
    *,
    passes: int,
    batch: int,
    seed: int,
    device: torch.device,
    desc: str = "evaluating",
) -> dict[str, torch.Tensor]:
    """Per-block NLL sums (float64, nats) of every estimator the model supports.

    AR: {"exact": (N,)} over the L - 1 predicted tokens. Diffusion: {"published",
    "valid_bound"} summed over the L tokens and averaged over ``passes``; in each pass
    the times are stratified over all N sequences x k time blocks (k = 1 but for block
    diffusion), drawn from a generator seeded with ``seed``, in [eps, 1] whatever window
    the model trained in (any other window is not a bound).
    """
    n = blocks.shape[0]
    rows = list(torch.split(torch.arange(n), batch))

    def batch_of(idx: torch.Tensor) -> torch.Tensor:
        # One batch at a time: the (memory-mapped) evaluation set is never copied whole.
        return torch.from_numpy(np.asarray(blocks[idx.numpy()], dtype=np.int64)).to(device)

    if isinstance(model, AutoregressiveLM):
        out = torch.zeros(n, dtype=torch.float64)
        for idx in tqdm(rows, desc=desc, unit="batch"):
            out[idx] = model.token_nll(batch_of(idx)).double().sum(-1).cpu()
        return {"exact": out}
    if not isinstance(model, MaskedDiffusion):
        raise TypeError(f"no likelihood estimator for {type(model).__name__}")
    gen = torch.Generator(device=device).manual_seed(seed)
    sums = {
        "published": torch.zeros(n, dtype=torch.float64),
        "valid_bound": torch.zeros(n, dtype=torch.float64),
    }
    seq_len = blocks.shape[1]
    k = model.num_blocks(seq_len)
    for p in range(passes):
        t_all = sample_times(n * k, eps=model.time_eps, generator=gen, device=device).view(n, k)
        for idx in tqdm(rows, desc=f"{desc} (pass {p + 1}/{passes})", unit="batch"):
            x0 = batch_of(idx)
            t = t_all[idx.to(device)]
            t = t[:, 0] if k == 1 else t  # one time per sequence: (B,)
            y_t = mask_subtokens(
                model.codec.encode(x0),
                model.schedule.alpha(model.token_times(t, seq_len).double()),
                model.codec.mask_id,
                generator=gen,
            )
            losses = model.losses(x0, t, y_t)
            sums["published"][idx] += losses.published.double().sum(-1).cpu()
            sums["valid_bound"][idx] += losses.valid_bound.double().sum(-1).cpu()
    return {k: v / passes for k, v in sums.items()}


def nll_metrics(
    prefix: str,
    per_block: dict[str, torch.Tensor],
    tokens_per_block: dict[str, int],
    card: dict,
) -> list[Metric]:
    """NLL per token, its standard error over blocks, and PPL = exp(NLL), per estimator."""
    out = []
    for estimator, sums in per_block.items():
        per_token = sums / tokens_per_block[estimator]
        nll = float(per_token.mean())
        se = float(per_token.std()) / math.sqrt(len(per_token)) if len(per_token) > 1 else 0.0
        c = {
            **card,
            "estimator": ESTIMATORS[estimator],
            "tokens_per_block": tokens_per_block[estimator],
        }
        out += [
            Metric(f"{prefix}_nll_{estimator}", nll, c),
            Metric(f"{prefix}_nll_{estimator}_se", se, c),
            Metric(f"{prefix}_ppl_{estimator}", math.exp(nll), c),
        ]
    return out
