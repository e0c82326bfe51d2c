"""The settings of a reverse sampler (docs/method.md §6), as one typed value.

A :class:`SamplerConfig` is what a run fixes about sampling; :class:`prime.Sampler`
takes it at construction together with the model, and each call takes only the batch
size, the length and the random stream (the shape of flow_matching's solvers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch

from .step_schedules import corrector_schedule, temperature_schedule, time_grid, warped_grid

__all__ = ["SamplerConfig"]

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class SamplerConfig:
    """How samples are drawn.

    Attributes:
        steps: T, transitions of the time grid (unused with ``first_hitting``).
        proposal: ``token`` draws x ~ p(x | y_t) per token and reveals digits of f(x);
            ``subtoken`` draws each digit from its marginal sum_{x: f(x)_j = v} p(x | y_t),
            independently, and the corrector takes a draw of its own (joint decoder only).
            Without ``carry_over`` these are the authors' two image solvers: ``subtoken``
            their "carry-over" sampler, ``token`` their "no carry-over" sampler (§6.2).
        carry_over: restrict the joint softmax to the tokens consistent with the revealed
            digits (never an invalid code; the text models' carry-over, §5.2); None: the
            model's own setting (True for a bare denoiser).
        top_p: nucleus filtering of the joint token distribution (None: off), at every step
            but the final noise removal, which draws from the whole distribution.
        temperature: [a, beta, c] of tau(s) = a s^beta + c, s = 1 - t (None: tau = 1).
        corrector: [a, beta, c] of kappa(s) = a s^beta (1 - s)^beta, the strength of the
            divergence-free remasking term added after every step (None: off).
        corrector_at_zero: run the corrector step also where kappa(t) = 0, where its
            predictor term alpha' / (1 - alpha) still moves sub-tokens to the proposal
            (the authors' solver whenever its corrector is on, a = 0 included); False: a
            zero strength skips the step.
        time_warp: [a, beta, c] of the warped grid s -> 1 - a (1 - s)^beta + c (None:
            the uniform grid t_k = 1 - k (1 - eps) / T).
        first_hitting: reveal one sub-token per network call at drawn times (§6.4).
        final_argmax: the final noise-removal step (grids ending at t > 0) fills the masked
            tokens with the most likely token instead of a draw, as MDLM's sampler does;
            ell = 1 only.
        sampling_dtype: dtype of the probabilities and of the categorical noise.
        use_cache: reuse the network output after a whole-batch idle step (exact when
            the denoiser ignores t); None: when the model's denoiser ignores t (True for
            a bare denoiser).
        eps: last time of the uniform grid (t_T = eps).
        temper_components: hand tau(t) to the denoiser as ``temperature`` (B,) and use
            its output as is, instead of dividing the output by tau: a mixture denoiser
            then averages its components' softmax(logits / tau) (the authors' image
            solver), where dividing tempers the averaged mixture. The two agree at tau = 1
            and for one component. Needs a denoiser that takes ``temperature``; its
            output is not reused across steps (it depends on tau(t)).
    """

    steps: int = 128
    proposal: Literal["token", "subtoken"] = "token"
    carry_over: bool | None = None
    top_p: float | None = None
    temperature: Triple | None = None
    corrector: Triple | None = None
    corrector_at_zero: bool = False
    time_warp: Triple | None = None
    first_hitting: bool = False
    final_argmax: bool = False
    sampling_dtype: torch.dtype = torch.float64
    use_cache: bool | None = None
    eps: float = 1e-5
    temper_components: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.proposal not in ("token", "subtoken"):
            raise ValueError(f"proposal must be 'token' or 'subtoken', got {self.proposal!r}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.sampling_dtype.is_floating_point:
            raise ValueError(f"sampling_dtype must be a float dtype, got {self.sampling_dtype}")
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"eps must be in [0, 1), got {self.eps}")
        # Build the schedules once: a bad triple fails here, naming itself.
        self.temperature_fn()
        self.corrector_fn()
        if self.time_warp is not None:
            warped_grid(self.steps, *self.time_warp)

    def grid(self) -> torch.Tensor:
        """(T+1,) float64 decreasing diffusion times t_0 = 1 > ... > t_T."""
        if self.time_warp is None:
            return time_grid(self.steps, self.eps)
        return warped_grid(self.steps, *self.time_warp)

    def temperature_fn(self) -> Callable[[float], float] | None:
        return None if self.temperature is None else temperature_schedule(*self.temperature)

    def corrector_fn(self) -> Callable[[float], float] | None:
        return None if self.corrector is None else corrector_schedule(*self.corrector)

    def resolved(self, carry_over: bool, use_cache: bool) -> SamplerConfig:
        """This config with the model's defaults in place of the fields left None."""
        return replace(
            self,
            carry_over=carry_over if self.carry_over is None else self.carry_over,
            use_cache=use_cache if self.use_cache is None else self.use_cache,
        )
