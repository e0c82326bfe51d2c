"""Forward (noising) process on sub-tokens and training-time sampling (PRIME_SPEC §3.1).

Every sub-token is masked independently:

    q(y_t^{i,j} | y_0^{i,j}) = alpha_t * delta_{y_0^{i,j}} + (1 - alpha_t) * delta_m.

Times are drawn per sequence, t = eps + (1 - eps) u. With ``antithetic=True`` the batch is
stratified as in MDLM: u_k = (r_k + k) / n, r_k ~ U(0, 1), k = 0..n-1, so each of the n
strata of [0, 1) holds exactly one time.
"""

from __future__ import annotations

import torch

__all__ = ["sample_times", "mask_subtokens"]


def sample_times(
    batch_size: int,
    *,
    eps: float = 1e-3,
    antithetic: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Diffusion times (batch_size,) in [eps, 1).

    Args:
        batch_size: number of sequences n.
        eps: smallest time; keeps the 1/t loss weight finite (MDLM: 1e-3).
        antithetic: stratify u over the batch (one draw per stratum [k/n, (k+1)/n)).
        generator: random stream for reproducible draws.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
    if antithetic:
        u = (u + torch.arange(batch_size, device=u.device, dtype=u.dtype)) / batch_size
    return (eps + (1.0 - eps) * u).to(dtype)


def mask_subtokens(
    y0: torch.Tensor,
    alpha_t: torch.Tensor,
    mask_id: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw y_t ~ q(y_t | y_0), each sub-token kept with probability alpha_t.

    Args:
        y0: (B, ...) clean sub-tokens (any trailing shape, e.g. (B, L, ell)).
        alpha_t: (B,) keep probability per sequence, or a scalar.
        mask_id: the mask sub-token id m (``SubTokenizer.mask_id``).

    Returns:
        y_t with the same shape and dtype as ``y0``.
    """
    alpha_t = torch.as_tensor(alpha_t, device=y0.device, dtype=torch.float64)
    if alpha_t.dim() == 1:
        if alpha_t.shape[0] != y0.shape[0]:
            raise ValueError(
                f"alpha_t has {alpha_t.shape[0]} entries but y0 has batch size {y0.shape[0]}"
            )
        alpha_t = alpha_t.view(-1, *([1] * (y0.dim() - 1)))
    elif alpha_t.dim() != 0:
        raise ValueError(f"alpha_t must be a scalar or (B,), got shape {tuple(alpha_t.shape)}")
    u = torch.rand(y0.shape, generator=generator, device=y0.device, dtype=torch.float64)
    return torch.where(u < alpha_t, y0, torch.full_like(y0, mask_id))
