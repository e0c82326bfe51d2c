"""Likelihood estimates over a fixed evaluation set, shared by the text and image tasks.

AR models: the exact next-token NLL. Masked diffusion models: the published estimator and
the valid bound, each averaged over Monte Carlo passes whose times are stratified (one
stratum per sequence, or per block of a sequence for block diffusion) over the *whole*
evaluation set from a fixed seed, or within each evaluation batch from a seed per batch
(MDLM's and BD3-LM's validation), over the full window [eps, 1], accumulated in float64,
with a standard error over sequences.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from prime import sample_times

from ..core import Metric
from ..evaluation.shards import Sharding
from ..safe_files import atomic_write
from ..streams import eval_batch_seed
from .network_autocast import network_autocast

__all__ = [
    "block_nll",
    "nll_metrics",
    "save_per_block",
    "scored_tokens",
    "ESTIMATORS",
    "PER_BLOCK_ARTIFACT",
    "Strata",
]

Strata = Literal["set", "batch"]

# Where each run keeps its per-block values, for comparisons paired over the same blocks.
PER_BLOCK_ARTIFACT = ("likelihood", "per_block_nll.npz")

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
    strata: Strata = "set",
    precision: str = "float32",
    sharding: Sharding | None = None,
    stage: str = "likelihood",
) -> dict[str, torch.Tensor]:
    """Per-block NLL sums (float64, nats) of every estimator the model gives
    (``model.block_nll``).

    AR (no time draws): {"exact": (N,)} over the L - 1 predicted tokens, in one pass.
    Diffusion: {"published", "valid_bound"} summed over the L tokens and averaged over
    ``passes``, each sequence taking k times (``model.time_draws``: k = 1 but for block
    diffusion) in [eps, 1] whatever window the model trained in (any other window is not
    a bound). ``strata``: "set" stratifies a pass's times over all N x k draws, from one
    generator seeded ``seed`` that also draws the masks; "batch" stratifies them over the
    B x k draws of each batch of ``batch`` rows, time m = 0..Bk-1 of batch j in pass p
    being eps + (1 - eps) (u_m + m) / (Bk), u ~ U(0, 1) from a generator seeded
    ``eval_batch_seed(seed, j, p)`` that then draws the batch's masks. ``precision``
    bfloat16: the network's calls under bfloat16 autocast, the estimators after them as in
    float32 (:mod:`benchmarks.tasks.network_autocast`).

    Batch j of pass p is shard p * J + j of ``stage`` in ``sharding``
    (:mod:`benchmarks.evaluation.shards`): split over the ranks, kept as it is done.
    Under "set" strata a rank draws the masks of the batches it does not compute
    (``model.noisy_state``, no network call), so its generator is where one process's
    would be. The sums are pooled in shard order, in float64: the values of one process.
    """
    sharding = sharding or Sharding()
    n = blocks.shape[0]
    rows = list(torch.split(torch.arange(n), batch))
    draws = model.time_draws(blocks.shape[1])  # k time strata per sequence, 0: exact
    passes = passes if draws else 1
    replay = draws > 0 and strata == "set"
    if replay and sharding.ranks.size > 1 and not hasattr(model, "noisy_state"):
        raise ValueError(
            f"task.eval_strata = set over {sharding.ranks.size} ranks needs the model's "
            "noisy_state (to keep one generator in step on every rank); use eval_strata: batch"
        )
    settings = {"n": n, "passes": passes, "batch": batch, "seed": seed, "strata": strata}
    shards = sharding.stage(stage, {**settings, "precision": precision})
    gen = torch.Generator(device=device).manual_seed(seed)
    for p in range(passes):
        t_all = None
        if replay:
            t_all = sample_times(n * draws, eps=model.time_eps, generator=gen, device=device)
            t_all = t_all.view(n, draws)
        label = f"{desc} (pass {p + 1}/{passes})" if draws else desc
        for j, idx in enumerate(tqdm(rows, desc=label, unit="batch")):
            index = p * len(rows) + j
            compute = shards.todo(index)
            if not compute and not replay:
                continue
            # One batch at a time: the (memory-mapped) evaluation set is never copied whole.
            x0 = torch.from_numpy(np.asarray(blocks[idx.numpy()], dtype=np.int64)).to(device)
            t = None
            if t_all is not None:
                t = t_all[idx.to(device)]
            elif draws:
                gen = torch.Generator(device=device).manual_seed(eval_batch_seed(seed, j, p))
                t = sample_times(len(idx) * draws, eps=model.time_eps, generator=gen, device=device)
                t = t.view(len(idx), draws)
            if t is not None and draws == 1:
                t = t[:, 0]  # one time per sequence: (B,)
            if not compute:
                model.noisy_state(x0, t, gen)  # another rank's batch (or one done before)
                continue
            with network_autocast(model, precision, device):
                values = model.block_nll(x0, t, gen)
            shards.save(index, {k: v.double().cpu().numpy() for k, v in values.items()})
    sums: dict[str, torch.Tensor] = {}
    for index, values in enumerate(shards.gather(passes * len(rows))):
        idx = rows[index % len(rows)]
        for name, value in values.items():
            sums.setdefault(name, torch.zeros(n, dtype=torch.float64))[idx] += torch.from_numpy(
                value
            )
    return {k: v / passes for k, v in sums.items()}


def scored_tokens(model: torch.nn.Module | None, seq_len: int) -> dict[str, int]:
    """Tokens each estimator's per-block sum covers: L - 1 for AR's exact NLL (the first
    token is given), L for the diffusion estimators, L - 1 for a model that keeps the
    first token given and unscored (``ignore_bos``, BD3-LM's)."""
    given = 1 if getattr(model, "ignore_bos", False) else 0
    return {"exact": seq_len - 1, "published": seq_len - given, "valid_bound": seq_len - given}


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


def save_per_block(
    directory: Path,
    per_block: dict[str, torch.Tensor],
    units_per_block: dict[str, int],
    index: np.ndarray | torch.Tensor,
    seed: int,
) -> Path:
    """Write the per-block values of every estimator, divided by ``units_per_block``
    (tokens, dimensions, or 1 for nats per sample), as ``per_block_nll.npz`` in
    ``directory``; ``index`` identifies the evaluation blocks and ``seed`` the time
    draws, so that a comparison of two runs can check that it is paired. Returns the path.
    """
    path = directory / PER_BLOCK_ARTIFACT[1]
    values = {k: (v / units_per_block[k]).numpy() for k, v in per_block.items()}
    with atomic_write(path, "per-block NLL artifact") as handle:
        np.savez_compressed(handle, index=np.asarray(index, dtype=np.int64), seed=seed, **values)
    return path
