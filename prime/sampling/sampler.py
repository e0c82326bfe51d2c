"""Reverse sampler over sub-tokens with idle-step counting and caching (docs/method.md §6.1, §6.4).

Grid: t_k = 1 - k (1 - eps) / T, k = 0..T. Start from y = all masked (L x ell sub-tokens),
optionally with the first P tokens fixed to a prefix. Step k (t = t_k -> s = t_{k+1}):

1. prediction: p_theta(. | y, t) from the denoiser, reused from the cache if valid;
2. draw: joint decoder -- x^i ~ Cat(p^i) per token, y^i = f(x^i); independent decoder --
   each digit from its own softmax;
3. reveal: every masked sub-token independently becomes its drawn value with probability
   (alpha_s - alpha_t) / (1 - alpha_t); revealed sub-tokens never change. The reveal
   decisions are drawn first, so proposals are drawn only at positions that reveal
   something (the same law: a proposal no sub-token takes is never seen);
4. corrector (image sampler, optional): every sub-token may then jump at the rates of
   :mod:`prime.sampling.corrector`, towards the step's clean proposal: with ``token`` proposals the
   same draw the reveals used, with ``subtoken`` proposals an independent draw from the
   marginals (the two solvers of the authors' image code);
5. idle detection: step k is idle for a sequence if none of its sub-tokens changed. If the
   whole batch is idle the network input is unchanged, so with ``use_cache`` the prediction
   is reused at the next step (exact when the denoiser ignores t, as MDLM's does).

A final "noise removal" step at t_T = eps fills every remaining masked sub-token from one
more prediction (cached if the last transition was idle). On a grid down to t_T = 0 (the
image sampler's warped grids) the last transition reveals everything: it runs no
corrector, and no final call is made. Counts:

    idle_steps[b]     = # of the T transitions with no change in sequence b (ISR = / T)
    batch_idle_steps  = # of transitions with no change anywhere in the batch
    nfe               = network calls = T + 1 - batch_idle_steps   (with caching)
                                        T + 1                      (without)
                        less the final call on a grid down to t = 0 (the image
                        solvers' N calls for N steps)

Clean proposals and categorical draws: :mod:`prime.sampling.proposals`; the settings:
:class:`prime.SamplerConfig`; one sub-token per call instead of a grid:
:mod:`prime.sampling.first_hitting`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from ..codec import SubTokenizer
from ..schedules import Schedule, get_schedule
from .config import SamplerConfig
from .corrector import corrector_jump
from .first_hitting import reveal_one_per_call
from .proposals import propose
from .state import SampleResult, initial_state

__all__ = ["Denoiser", "Sampler"]

Denoiser = Callable[..., torch.Tensor]
"""(y_t (B, L, ell) long, t (B,) float) -> logits: (B, L, C) joint or (B, L, ell, b) independent;
with ``SamplerConfig.temper_components`` also ``temperature=`` tau (B,), applied inside.

The sampler may overwrite the returned logits in place (carry-over restriction), so a
denoiser must return a fresh tensor on every call."""

StepHook = Callable[[int, torch.Tensor, torch.Tensor], None]


class Sampler:
    """A reverse sampler: the denoiser, its codec, schedule and decoder, and the
    :class:`SamplerConfig` at construction; each call draws a batch.

    Args:
        denoiser: network, see :data:`Denoiser`.
        codec: the sub-token codec (C, ell, b).
        config: the settings; ``carry_over`` / ``use_cache`` left None mean True.
        schedule: alpha_t; the reveal probability per step is
            (alpha_s - alpha_t) / (1 - alpha_t). ``linear`` and ``loglinear`` coincide here.
        decoder: ``joint`` (logits over C tokens) or ``independent`` (ell x b logits).
    """

    def __init__(
        self,
        denoiser: Denoiser,
        codec: SubTokenizer,
        config: SamplerConfig | None = None,
        *,
        schedule: str | Schedule = "linear",
        decoder: Literal["joint", "independent"] = "joint",
    ):
        config = (config or SamplerConfig()).resolved(carry_over=True, use_cache=True)
        if decoder not in ("joint", "independent"):
            raise ValueError(f"decoder must be 'joint' or 'independent', got {decoder!r}")
        if config.proposal == "subtoken" and decoder != "joint":
            raise ValueError("proposal='subtoken' marginalises a joint decoder")
        if config.top_p is not None and decoder != "joint":
            raise ValueError("top_p filtering is defined for the joint decoder only")
        if config.first_hitting and (config.temperature or config.corrector):
            raise ValueError("first_hitting takes no temperature or corrector schedule")
        if config.final_argmax and (codec.ell != 1 or decoder != "joint"):
            raise ValueError("final_argmax is MDLM's rule: ell = 1 with the joint decoder")
        self.denoiser = denoiser
        self.codec = codec
        self.config = config
        self.schedule = get_schedule(schedule)
        self.decoder = decoder
        self._temperature = config.temperature_fn()
        # tau applied inside the denoiser (each mixture component tempered): not to its output
        self._tau_inside = self._temperature if config.temper_components else None
        self._corrector = config.corrector_fn()

    def draw(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        t: float | None,
        where: torch.Tensor | None,
        generator: torch.Generator | None,
        top_p: bool = True,
    ) -> torch.Tensor:
        """Clean sub-token proposals (B, L, ell) from the network output at time t (None
        only without a temperature), drawn only at the positions ``where`` (all if None);
        ``top_p`` False: from the whole distribution whatever ``config.top_p``."""
        c = self.config
        divide = self._temperature is not None and t is not None and self._tau_inside is None
        if divide:
            logits = logits / self._temperature(t)
        # The top-p restriction writes into its input: keep the cached network output
        # intact (dividing by a temperature already made a copy).
        return propose(
            logits,
            y,
            self.codec,
            decoder=self.decoder,
            carry_over=bool(c.carry_over),
            proposal=c.proposal,
            top_p=c.top_p if top_p else None,
            sampling_dtype=c.sampling_dtype,
            generator=generator,
            inplace=divide,
            where=where,
        )

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int,
        seq_len: int,
        *,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        on_step: StepHook | None = None,
    ) -> SampleResult:
        """Draw ``batch_size`` sequences of ``seq_len`` tokens.

        Args:
            generator: random stream; with a deterministic denoiser the same stream gives
                the same samples with and without caching.
            prefix: (P,) or (B, P) token ids fixed at the start of every sequence.
            device: where the samples live (default: the codec's).
            on_step: called as ``on_step(k, y_before, y_after)`` after each of the T steps
                (not with first hitting).
        """
        y = initial_state(self.codec, batch_size, seq_len, prefix, device)
        if self.config.first_hitting:
            return reveal_one_per_call(
                self.denoiser, self.codec, self.schedule, self.draw, y, generator
            )
        return self._on_grid(y, generator, on_step)

    def _on_grid(
        self, y: torch.Tensor, generator: torch.Generator | None, on_step: StepHook | None
    ) -> SampleResult:
        batch_size, device, mask_id = y.shape[0], y.device, self.codec.mask_id
        grid = self.config.grid()
        num_steps = len(grid) - 1
        alpha = self.schedule.alpha(grid)

        def network(t: float) -> torch.Tensor:
            times = torch.full((batch_size,), t, device=device)
            if self._tau_inside is None:
                return self.denoiser(y, times)
            return self.denoiser(y, times, temperature=torch.full_like(times, self._tau_inside(t)))

        # An output tempered inside holds tau(t) of its own step: never reused.
        use_cache = bool(self.config.use_cache) and self._tau_inside is None

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
            # A transition that reveals every masked sub-token (alpha_s = 1) is the last
            # one of a grid down to t = 0: it only fills, as the image solvers' last step.
            fills = reveal_prob >= 1.0
            on = self._corrector is not None and not fills
            kappa = self._corrector(t) if on else 0.0
            # At strength 0 only where its rates are finite (0 < alpha < 1), so that at
            # a > 0 corrector_at_zero changes no draw.
            at_zero = self.config.corrector_at_zero and 0.0 < float(alpha[k]) < 1.0
            correct = on and (kappa > 0.0 or at_zero)
            # A proposal matters only where something is revealed (the corrector reads all).
            y_hat = self.draw(cache, y, t, None if correct else reveal.any(-1), generator)
            y_before = y
            y = torch.where(reveal, y_hat, y)
            if correct:
                target = y_hat if self.config.proposal == "token" else None
                if target is None:  # sub-token proposals: the corrector draws its own
                    target = self.draw(cache, y_before, t, None, generator)
                y = corrector_jump(y, target, self.schedule, t, t - s, kappa, mask_id, generator)
            changed = (y != y_before).flatten(1).any(dim=1)
            idle += ~changed
            if bool(changed.any()) or not use_cache:
                cache = None
            else:
                batch_idle += 1
            if on_step is not None:
                on_step(k, y_before, y)

        # Final noise removal at t_T > 0: fill whatever is still masked from the whole
        # distribution, without nucleus filtering, as the MDLM code base's last step. A
        # grid down to t = 0 has nothing left to fill.
        if float(grid[-1]) > 0.0:
            masked = y == mask_id
            if cache is None:
                cache = network(float(grid[-1]))
                nfe += 1
            if self.config.final_argmax:  # ell = 1: the digit is the token
                drawn = cache.argmax(dim=-1, keepdim=True)
            else:
                drawn = self.draw(cache, y, float(grid[-1]), masked.any(-1), generator, False)
            y = torch.where(masked, drawn, y)
        return SampleResult(
            tokens=self.codec.decode(y),
            subtokens=y,
            idle_steps=idle,
            batch_idle_steps=batch_idle,
            nfe=nfe,
            num_steps=num_steps,
            num_classes=self.codec.num_classes,
        )
