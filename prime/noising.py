"""Forward (noising) process on sub-tokens and training-time sampling (docs/method.md §3.1).

Every sub-token is masked independently:

    q(y_t^{i,j} | y_0^{i,j}) = alpha_t * delta_{y_0^{i,j}} + (1 - alpha_t) * delta_m.

Times are drawn per sequence (or per block of a sequence), t = eps + (high - eps) u with
high = 1 except for clipped windows [eps, high] (block diffusion's [beta, omega]).
With ``antithetic=True`` the batch is stratified as in MDLM: u_k = (r_k + k) / n,
r_k ~ U(0, 1), k = 0..n-1, so each of the n strata of [0, 1) holds exactly one time.
With ``BatchShard.strata = n`` the strata restart every n rows of the global batch: row j
takes stratum j mod n (MDLM's ``_sample_t`` over each forward call of n rows); n = 1 gives
independent u_j ~ U(0, 1).

Data parallelism splits one global batch of n rows over ranks and micro-batches. With a
:class:`BatchShard` the draws are made for all n rows from the step's generator and only
the shard's rows are kept, so a row's time and mask depend on its position in the global
batch, never on how the batch was split: one process and N ranks see the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BatchShard", "sample_times", "mask_subtokens", "mask_at_least_one", "masking_problem"]


@dataclass(frozen=True)
class BatchShard:
    """Rows [start, start + size) of a global batch of ``total`` rows; ``strata``: the
    times are stratified over each run of that many consecutive rows of the global batch
    (row j in stratum j mod strata), None: over all ``total`` rows."""

    start: int
    size: int
    total: int
    strata: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.start and self.size >= 1 and self.start + self.size <= self.total):
            raise ValueError(
                f"shard rows [{self.start}, {self.start + self.size}) do not lie in a "
                f"global batch of {self.total}"
            )
        if self.strata is not None and not (1 <= self.strata and self.total % self.strata == 0):
            raise ValueError(
                f"strata: expected a divisor of the global batch of {self.total}, got {self.strata}"
            )

    def per_row(self, k: int) -> BatchShard:
        """The same rows, each widened to k consecutive entries (row-major (rows, k)),
        the strata too: k times per row, stratified over each group's rows x k."""
        strata = None if self.strata is None else self.strata * k
        return BatchShard(self.start * k, self.size * k, self.total * k, strata)


def _uniform(
    shape: tuple[int, ...],
    shard: BatchShard | None,
    generator: torch.Generator | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """U(0, 1) float64 of ``shape``: drawn for the whole global batch, sliced to ``shard``."""
    if shard is None:
        return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    if shape[0] != shard.size:
        raise ValueError(f"batch has {shape[0]} rows but the shard has {shard.size}")
    full = torch.rand(
        (shard.total, *shape[1:]), generator=generator, device=device, dtype=torch.float64
    )
    return full[shard.start : shard.start + shard.size]


def sample_times(
    batch_size: int,
    *,
    eps: float = 1e-3,
    antithetic: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    shard: BatchShard | None = None,
    high: float = 1.0,
) -> torch.Tensor:
    """Diffusion times (batch_size,) in [eps, high).

    Args:
        batch_size: number of sequences n.
        eps: smallest time; keeps the 1/t loss weight finite (MDLM: 1e-3).
        high: largest time (1: the full window; below 1: a clipped window).
        antithetic: stratify u over the batch (one draw per stratum [k/n, (k+1)/n)).
        generator: random stream for reproducible draws.
        shard: these rows are part of a larger global batch (strata span all its rows,
            or each run of ``shard.strata`` of them).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= eps < high <= 1.0:
        raise ValueError(f"times must lie in a window 0 <= eps < high <= 1, got [{eps}, {high}]")
    u = _uniform((batch_size,), shard, generator, device)
    if antithetic:
        n, first = (
            (shard.strata or shard.total, shard.start) if shard is not None else (batch_size, 0)
        )
        k = torch.arange(first, first + batch_size, device=u.device) % n
        u = (u + k.to(u.dtype)) / n
    return (eps + (high - eps) * u).to(dtype)


def mask_subtokens(
    y0: torch.Tensor,
    alpha_t: torch.Tensor,
    mask_id: int,
    *,
    generator: torch.Generator | None = None,
    shard: BatchShard | None = None,
) -> torch.Tensor:
    """Draw y_t ~ q(y_t | y_0), each sub-token kept with probability alpha_t.

    Args:
        y0: (B, ...) clean sub-tokens (any trailing shape, e.g. (B, L, ell)).
        alpha_t: keep probability: a scalar, (B,) per sequence, or (B, L) per token.
        mask_id: the mask sub-token id m (``SubTokenizer.mask_id``).
        shard: ``y0`` holds these rows of a larger global batch.

    Returns:
        y_t with the same shape and dtype as ``y0``.
    """
    alpha_t = torch.as_tensor(alpha_t, device=y0.device, dtype=torch.float64)
    if alpha_t.dim() > 0:
        if alpha_t.dim() >= y0.dim() or alpha_t.shape != y0.shape[: alpha_t.dim()]:
            raise ValueError(
                f"alpha_t of shape {tuple(alpha_t.shape)} must be a scalar or match the "
                f"leading dimensions of y0 {tuple(y0.shape)}"
            )
        alpha_t = alpha_t.view(*alpha_t.shape, *([1] * (y0.dim() - alpha_t.dim())))
    u = _uniform(tuple(y0.shape), shard, generator, y0.device)
    return torch.where(u < alpha_t, y0, torch.full_like(y0, mask_id))


def mask_at_least_one(
    y0: torch.Tensor,
    alpha_t: torch.Tensor,
    mask_id: int,
    *,
    generator: torch.Generator | None = None,
    shard: BatchShard | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw y_t from a proposal that never leaves a sequence clean, with its importance weight.

    Each row of ``y0`` is one sequence of N sub-tokens (all its trailing dimensions). Under
    q(y_t | y_0) every sub-token is masked independently with probability a = 1 - alpha_t,
    so a mask set M of size k has q(M) = a^k (1 - a)^(N - k). The proposal r masks one
    position drawn uniformly from the N, and every other position independently with
    probability a:

        r(M) = (k / N) a^(k-1) (1 - a)^(N - k),    q(M) / r(M) = N a / k    (k >= 1).

    Every loss that vanishes on a clean sequence (the valid bound; the published
    estimator with carry-over) has E_r[(q / r) loss] = E_q[loss]: the same objective. For
    short sequences it has far less variance: with the linear schedule the weight w(t)
    q / r = N / k lies in [1, N] where w(t) = 1 / t alone is unbounded, and no draw is
    spent on a clean sequence (a fraction of about 1 / (N + 1) under q). Marginally, with
    t uniform, k - 1 ~ Binomial(N - 1, a) gives the any-order form of the NELBO,
    sum_k (1 / k) E_{|M| = k}[sum_{i in M} -log p(y_0^i | y_M)].

    Args:
        y0: (B, ...) clean sub-tokens; each row is one sequence.
        alpha_t: (B,) keep probability of each sequence (one time per sequence).
        mask_id: the mask sub-token id m.
        shard: ``y0`` holds these rows of a larger global batch.

    Returns:
        y_t (same shape and dtype as ``y0``) and the weights q / r, (B,) float64.
    """
    alpha_t = torch.as_tensor(alpha_t, device=y0.device, dtype=torch.float64)
    if alpha_t.shape != y0.shape[:1]:
        raise ValueError(
            f"alpha_t must hold one keep probability per sequence, shape ({y0.shape[0]},); "
            f"got {tuple(alpha_t.shape)}"
        )
    batch, n = y0.shape[0], y0[0].numel()
    keep = _uniform((batch, n), shard, generator, y0.device) < alpha_t.unsqueeze(-1)
    forced = (_uniform((batch,), shard, generator, y0.device) * n).long().clamp(max=n - 1)
    keep[torch.arange(batch, device=y0.device), forced] = False
    masked = n - keep.sum(-1)
    weight = n * (1.0 - alpha_t) / masked.double()
    y_t = torch.where(keep.view_as(y0), y0, torch.full_like(y0, mask_id))
    return y_t, weight


def masking_problem(masking: str, objective: str, carry_over: bool) -> str | None:
    """Why ``masking`` cannot train ``objective``, or None. The at-least-one proposal's
    weight needs a loss that is 0 on a clean sequence: without carry-over the published
    loss charges revealed tokens, and the unweighted cross-entropy is no expectation."""
    if masking not in ("independent", "at_least_one"):
        return f"expected 'independent' or 'at_least_one', got {masking!r}"
    if masking == "at_least_one" and (
        objective in ("cross_entropy", "cross_entropy_257")
        or (objective == "published" and not carry_over)
    ):
        return (
            "at_least_one needs a loss that is 0 on a clean sequence: the valid objective, "
            f"or published with carry-over; got objective {objective!r}, carry_over {carry_over}"
        )
    return None
