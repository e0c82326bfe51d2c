"""Reverse sampler over sub-tokens with idle-step counting and caching (PRIME_SPEC §6.1, §6.4).

Grid: t_k = 1 - k (1 - eps) / T, k = 0..T. Start from y = all masked (L x ell sub-tokens),
optionally with the first P tokens fixed to a prefix. Step k (t = t_k -> s = t_{k+1}):

1. prediction: p_theta(. | y, t) from the denoiser, reused from the cache if valid;
2. draw: joint decoder -- x^i ~ Cat(p^i) per token, y^i = f(x^i); independent decoder --
   each digit from its own softmax;
3. reveal: every masked sub-token independently becomes its drawn value with probability
   (alpha_s - alpha_t) / (1 - alpha_t); revealed sub-tokens never change. The reveal
   decisions are drawn first, so proposals are drawn only at positions that reveal
   something (the same law: a proposal no sub-token takes is never seen);
4. idle detection: step k is idle for a sequence if none of its sub-tokens changed. If the
   whole batch is idle the network input is unchanged, so with ``use_cache`` the prediction
   is reused at the next step (exact when the denoiser ignores t, as MDLM's does).

A final "noise removal" step at t_T = eps fills every remaining masked sub-token from one
more prediction (cached if the last transition was idle). Counts:

    idle_steps[b]     = # of the T transitions with no change in sequence b (ISR = / T)
    batch_idle_steps  = # of transitions with no change anywhere in the batch
    nfe               = network calls = T + 1 - batch_idle_steps   (with caching)
                                        T + 1                      (without)

Clean proposals and categorical draws: :mod:`prime.proposals`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from .codec import SubTokenizer
from .corrector import corrector_jump
from .proposals import Proposal, propose, sample_categorical, top_p_filter
from .schedules import Schedule, get_schedule

__all__ = [
    "Denoiser",
    "SampleResult",
    "sample",
    "time_grid",
    "sample_categorical",
    "top_p_filter",
]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(y_t (B, L, ell) long, t (B,) float) -> logits: (B, L, C) joint or (B, L, ell, b) independent.

The sampler may overwrite the returned logits in place (carry-over restriction), so a
denoiser must return a fresh tensor on every call."""

StepHook = Callable[[int, torch.Tensor, torch.Tensor], None]
TimeFunction = Callable[[float], float]  # a function of the diffusion time t


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


def time_grid(num_steps: int, eps: float = 1e-5) -> torch.Tensor:
    """(T+1,) float64 grid t_k = 1 - k (1 - eps) / T, from 1 down to eps."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    k = torch.arange(num_steps + 1, dtype=torch.float64)
    return 1.0 - k * (1.0 - eps) / num_steps


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
    decoder: str,
    proposal: str,
    top_p: float | None,
    sampling_dtype: torch.dtype,
    prefix: torch.Tensor | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    """The checked settings of a reverse sampler, and its start: y (B, L, ell) all masked
    but for the ``prefix`` tokens, on ``device`` (default: the codec's)."""
    if decoder not in ("joint", "independent"):
        raise ValueError(f"decoder must be 'joint' or 'independent', got {decoder!r}")
    if proposal not in ("token", "subtoken"):
        raise ValueError(f"proposal must be 'token' or 'subtoken', got {proposal!r}")
    if proposal == "subtoken" and decoder != "joint":
        raise ValueError("proposal='subtoken' marginalises a joint decoder")
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
    if top_p is not None and decoder != "joint":
        raise ValueError("top_p filtering is defined for the joint decoder only")
    if not sampling_dtype.is_floating_point:
        raise ValueError(f"sampling_dtype must be a float dtype, got {sampling_dtype}")
    device = torch.device(device) if device is not None else codec.device
    shape = (batch_size, seq_len, codec.ell)
    y = torch.full(shape, codec.mask_id, dtype=torch.long, device=device)
    if prefix is not None:
        prefix = _check_prefix(prefix, batch_size, seq_len).to(device)
        y[:, : prefix.shape[1]] = codec.encode(prefix)
    return y


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    codec: SubTokenizer,
    *,
    batch_size: int,
    seq_len: int,
    num_steps: int,
    schedule: str | Schedule = "linear",
    decoder: Literal["joint", "independent"] = "joint",
    carry_over: bool = True,
    proposal: Proposal = "token",
    top_p: float | None = None,
    temperature: TimeFunction | None = None,
    corrector: TimeFunction | None = None,
    grid: torch.Tensor | None = None,
    sampling_dtype: torch.dtype = torch.float64,
    prefix: torch.Tensor | None = None,
    use_cache: bool = True,
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    on_step: StepHook | None = None,
) -> SampleResult:
    """Draw ``batch_size`` sequences of ``seq_len`` tokens in ``num_steps`` reverse steps.

    Args:
        denoiser: network, see :data:`Denoiser`.
        codec: the sub-token codec (C, ell, b).
        schedule: alpha_t; the reveal probability per step is
            (alpha_s - alpha_t) / (1 - alpha_t). ``linear`` and ``loglinear`` coincide here.
        decoder: ``joint`` (logits over C tokens) or ``independent`` (ell x b logits).
        carry_over: restrict the joint softmax to tokens consistent with revealed
            digits (never yields a code >= C). Without it the joint decoder can combine
            digits of different draws into an invalid code.
        proposal: ``token`` draws x ~ p(x | y_t) per token and reveals digits of f(x);
            ``subtoken`` draws every digit from its marginal sum_{x: f(x)_j = v} p(x | y_t)
            (the image code's "carry-over" sampler, PRIME_SPEC §6.2).
        top_p: nucleus filtering of the joint token distribution.
        temperature: tau(t): logits are divided by it (the image sampler's schedule).
        corrector: kappa(t) > 0 adds a remasking jump after every step (§6.2): with
            A = alpha'/(1 - alpha), B = alpha'/(alpha (1 - alpha)) (flow-time derivative),
            a masked sub-token jumps to its proposal at rate A + kappa B alpha, a revealed
            one equal to its proposal to the mask at rate kappa B (1 - alpha), and any other
            value to either at those rates; jump probability 1 - exp(-h * rate).
        grid: decreasing diffusion times t_0 = 1 > ... > t_T (e.g. a warped grid);
            overrides ``num_steps`` and ``eps``.
        sampling_dtype: dtype of probabilities and of the categorical noise.
        prefix: (P,) or (B, P) token ids fixed at the start of every sequence.
        use_cache: reuse the network output after a whole-batch idle step (exact when
            the denoiser ignores t; the temperature is applied afterwards).
        eps: last time of the default grid (t_T = eps).
        generator: random stream; with a deterministic denoiser the same stream gives the
            same samples with and without caching.
        on_step: called as ``on_step(k, y_before, y_after)`` after each of the T steps.
    """
    y = initial_state(
        codec, batch_size, seq_len, decoder, proposal, top_p, sampling_dtype, prefix, device
    )
    device = y.device
    schedule = get_schedule(schedule)
    if grid is None:
        grid = time_grid(num_steps, eps)
    else:
        grid = torch.as_tensor(grid, dtype=torch.float64).cpu()
        if grid.dim() != 1 or len(grid) < 2 or not bool((grid[1:] < grid[:-1]).all()):
            raise ValueError("grid must be a strictly decreasing 1-d tensor of >= 2 times")
        num_steps = len(grid) - 1
    alpha = schedule.alpha(grid)
    mask_id = codec.mask_id

    def network(t: float) -> torch.Tensor:
        return denoiser(y, torch.full((batch_size,), t, device=device))

    def draw(logits: torch.Tensor, t: float, where: torch.Tensor | None) -> torch.Tensor:
        """Clean sub-token proposals (B, L, ell) from the network output at time t, drawn
        only at the positions ``where`` (all if None)."""
        if temperature is not None:
            logits = logits / temperature(t)
        # The top-p restriction writes into its input: keep the cached network output
        # intact (dividing by a temperature already made a copy).
        return propose(
            logits,
            y,
            codec,
            decoder=decoder,
            carry_over=carry_over,
            proposal=proposal,
            top_p=top_p,
            sampling_dtype=sampling_dtype,
            generator=generator,
            inplace=temperature is not None,
            where=where,
        )

    idle = torch.zeros(batch_size, dtype=torch.long, device=device)
    batch_idle = 0
    nfe = 0
    cache: torch.Tensor | None = None
    for k in range(num_steps):
        t, s = float(grid[k]), float(grid[k + 1])
        if cache is None:
            cache = network(t)
            nfe += 1
        reveal_prob = float((alpha[k + 1] - alpha[k]) / (1.0 - alpha[k]))
        u = torch.rand(y.shape, generator=generator, device=device, dtype=torch.float64)
        reveal = (y == mask_id) & (u < reveal_prob)
        kappa = corrector(t) if corrector is not None else 0.0
        # A proposal matters only where something is revealed (the corrector reads all).
        y_hat = draw(cache, t, reveal.any(-1) if kappa <= 0.0 else None)
        y_before = y
        y = torch.where(reveal, y_hat, y)
        if kappa > 0.0:
            y = corrector_jump(y, y_hat, schedule, t, t - s, kappa, mask_id, generator)
        changed = (y != y_before).flatten(1).any(dim=1)
        idle += ~changed
        if bool(changed.any()) or not use_cache:
            cache = None
        else:
            batch_idle += 1
        if on_step is not None:
            on_step(k, y_before, y)

    # Final noise removal at t_T: fill whatever is still masked.
    if cache is None:
        cache = network(float(grid[-1]))
        nfe += 1
    masked = y == mask_id
    y = torch.where(masked, draw(cache, float(grid[-1]), masked.any(-1)), y)

    return SampleResult(
        tokens=codec.decode(y),
        subtokens=y,
        idle_steps=idle,
        batch_idle_steps=batch_idle,
        nfe=nfe,
        num_steps=num_steps,
        num_classes=codec.num_classes,
    )
