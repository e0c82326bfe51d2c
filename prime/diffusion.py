"""A masked diffusion model over sub-tokens: denoiser network + codec + schedule.

``MaskedDiffusion`` ties the pieces of this package into one trainable model:

* training: t from ``sample_times``, y_t from ``mask_subtokens`` (or, reweighted, from
  ``mask_at_least_one``), then the per-token losses of ``losses.py``; ``objective``
  picks the one minimised ("published": the joint estimator; "valid": the bound);
* evaluation: both per-token losses for given (x0, t, y_t);
* sampling: :class:`prime.Sampler` with the model's decoder and carry-over setting,
  caching only when the network ignores t.

MDM / MDLM is the case ell = 1 (b = C, the mask sub-token is the mask token), where the
joint decoder with carry-over is the SUBS parameterization and both losses coincide.

With the independent decoder (ell softmaxes over b digit values) the published estimator
sums -log p over *all* digits, so with carry-over the two losses coincide there too.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from .codec import SubTokenizer
from .decoder.grid_softmax import grid_softmax
from .decoder.parameterization import independent_log_probs
from .losses import PrimeLosses, published_joint_loss, valid_marginal_bound
from .mask_class import clean_class_logits, mask_class_cross_entropy, mask_class_losses
from .noising import BatchShard, mask_at_least_one, mask_subtokens, masking_problem, sample_times
from .sampling.config import SamplerConfig
from .sampling.idle import expected_idle_ratio
from .sampling.sampler import Sampler
from .sampling.state import SampleResult
from .schedules import Schedule, get_schedule

__all__ = ["MaskedDiffusion", "Decoder", "Objective", "Masking"]

Decoder = Literal["joint", "independent"]
Objective = Literal["published", "valid", "cross_entropy", "cross_entropy_257"]
Masking = Literal["independent", "at_least_one"]


class MaskedDiffusion(nn.Module):
    """Masked diffusion over ell sub-tokens per token.

    Args:
        network: maps (y_t (B, L, ell) long, t (B,)) to (B, L, out_dim); out_dim = C for
            the joint decoder, ell * b for the independent one. May define
            ``time_conditioned`` (default True: it uses t); gets :meth:`forward`'s keywords.
        codec: the sub-token codec.
        schedule: alpha_t (name or object).
        decoder: "joint" or "independent".
        carry_over: keep revealed digits fixed in the decoder's distribution.
        objective: loss minimised in training: "published", "valid", "cross_entropy"
            (unweighted, every token; the image experiments) or "cross_entropy_257" (the
            same over C + 1 outputs, the last the mask class; :mod:`prime.mask_class`).
        time_eps: smallest time of training and likelihood draws (w(t) stays finite).
        train_time_eps: smallest training time instead (None: time_eps); 0 only with an
            unweighted (cross-entropy) objective, w(t) being infinite at t = 0.
        masking: how training draws y_t given t: "independent" masks every sub-token
            with probability 1 - alpha_t (MDLM); "at_least_one" masks one uniformly chosen
            sub-token of each sequence for sure and weights the loss by q / r
            (:func:`prime.mask_at_least_one`): the same objective, lower variance on short
            sequences. Needs a loss that is 0 on a clean sequence (the valid bound, or
            carry-over).
    """

    def __init__(
        self,
        network: nn.Module,
        codec: SubTokenizer,
        schedule: str | Schedule = "loglinear",
        *,
        decoder: Decoder = "joint",
        carry_over: bool = True,
        objective: Objective = "published",
        time_eps: float = 1e-3,
        train_time_eps: float | None = None,
        masking: Masking = "independent",
    ):
        super().__init__()
        if decoder not in ("joint", "independent"):
            raise ValueError(f"decoder must be 'joint' or 'independent', got {decoder!r}")
        if objective not in get_args(Objective):
            raise ValueError(f"objective must be one of {get_args(Objective)}, got {objective!r}")
        if objective == "cross_entropy_257" and (codec.ell != 1 or decoder != "joint"):
            raise ValueError("objective 'cross_entropy_257' needs ell = 1 and the joint decoder")
        problem = masking_problem(masking, objective, carry_over)
        if problem:
            raise ValueError(f"masking: {problem}")
        self.network = network
        self.codec = codec
        self.schedule = get_schedule(schedule)
        self.decoder: Decoder = decoder
        self.carry_over = carry_over
        self.objective: Objective = objective
        self.time_eps = time_eps
        self.train_time_eps = time_eps if train_time_eps is None else train_time_eps
        self.masking: Masking = masking

    @property
    def ell(self) -> int:
        return self.codec.ell

    @property
    def time_conditioned(self) -> bool:
        return bool(getattr(self.network, "time_conditioned", True))

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - nn.Module signature
        # Keep the codec's lookup tables on the parameters' device.
        out = super()._apply(fn, recurse)
        self.codec.to(fn(torch.zeros(())).device)
        return out

    def forward(self, y_t: torch.Tensor, t: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Decoder logits: (B, L, C) joint (a mask class dropped) or (B, L, ell, b)."""
        out = self.network(y_t, t, **extra)
        if self.decoder == "independent":
            return out.view(*out.shape[:-1], self.codec.ell, self.codec.base)
        if self.objective == "cross_entropy_257":
            return clean_class_logits(out, self.codec.num_classes)
        return out

    def corrupt(
        self,
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        antithetic: bool = True,
        shard: BatchShard | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (t (B,), y_t (B, L, ell)) for clean tokens x0 (B, L), the rows ``shard``
        of a global batch when given (see :class:`prime.noising.BatchShard`)."""
        t = sample_times(
            x0.shape[0],
            eps=self.train_time_eps,
            antithetic=antithetic,
            generator=generator,
            device=x0.device,
            shard=shard,
        )
        y_t = mask_subtokens(
            self.codec.encode(x0),
            self.schedule.alpha(t.double()),
            self.codec.mask_id,
            generator=generator,
            shard=shard,
        )
        return t, y_t

    def predict(self, x0: torch.Tensor, t: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        """Decoder logits for the noised y_t (the clean x0 is unused here; block diffusion
        conditions on its earlier blocks)."""
        return self(y_t, t)

    def num_blocks(self, seq_len: int) -> int:
        """Blocks with a time of their own: one (block diffusion has more)."""
        return 1

    def time_draws(self, seq_len: int) -> int:
        """Diffusion times a likelihood estimate of one sequence takes: one per block."""
        return self.num_blocks(seq_len)

    @torch.no_grad()
    def block_nll(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """One Monte Carlo draw of each estimator's NLL of the sequences x0 (B, L): float64
        sums over the L tokens, (B,) each, at times t ((B,), or (B, k) per block), with
        y_t drawn from ``generator``. "valid_bound" is an upper bound on -log p(x0);
        "published" is the paper's joint estimator (not a bound for ell > 1)."""
        losses = self.losses(x0, t, self.noisy_state(x0, t, generator))
        return {name: value.double().sum(-1) for name, value in losses._asdict().items()}

    def noisy_state(
        self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """y_t ~ q(y_t | y_0), (B, L, ell), for x0 (B, L) at times t as in :meth:`block_nll`,
        drawn from ``generator`` as it draws them (a generator advanced alike)."""
        alpha = self.schedule.alpha(self.token_times(t, x0.shape[1]).double())
        return mask_subtokens(self.codec.encode(x0), alpha, self.codec.mask_id, generator=generator)

    def token_times(self, t: torch.Tensor, seq_len: int) -> torch.Tensor:
        """The time of each token: here one per sequence, t (B,) as is."""
        return t

    @property
    def objective_loss(self) -> str:
        """The per-token loss that training minimises: for ell = 1 the published estimator
        and the valid bound coincide, and the published form is cheaper."""
        if self.objective == "published" or self.codec.ell == 1:
            return "published"
        return "valid_bound"

    def evaluation_card(self) -> dict[str, object]:
        """What a likelihood estimate of this model depends on, to log beside it."""
        return {"time_eps": self.time_eps, "time_window": f"[{self.time_eps}, 1]"}

    def expected_idle_ratio(self, num_steps: int, seq_len: int, eps: float = 1e-5) -> float:
        """Closed-form idle-step ratio of :meth:`sample` on the uniform grid
        (:func:`prime.expected_idle_ratio`)."""
        return expected_idle_ratio(num_steps, seq_len, self.ell, self.schedule, eps=eps)

    def losses(
        self,
        x0: torch.Tensor,
        t: torch.Tensor,
        y_t: torch.Tensor,
        which: tuple[str, ...] = ("published", "valid_bound"),
    ) -> PrimeLosses:
        """Per-token (B, L) published estimator and valid bound, in nats.

        ``which`` names the losses to return (the others are None). Both come from the
        same pass over the logits: the token's log-probability and its digits' marginals.
        """
        if self.objective == "cross_entropy_257":  # the whole (C+1)-way head
            return mask_class_losses(self.network(y_t, t), x0, y_t, t, self.schedule, which)
        logits = self.predict(x0, t, y_t)
        t = self.token_times(t, x0.shape[1])
        if self.decoder == "joint":
            out = grid_softmax(logits, y_t, self.codec, targets=x0, carry_over=self.carry_over)
            token, digits = out.token_log_prob, out.digit_log_probs
        else:
            marginals = independent_log_probs(logits, y_t, self.codec, carry_over=self.carry_over)
            digits = marginals.gather(-1, self.codec.encode(x0).unsqueeze(-1)).squeeze(-1)
            token = digits.sum(-1)  # the decoder's own joint: a product over digits
        published = valid = None
        if "published" in which:
            published = published_joint_loss(token, t, self.schedule)
        if "valid_bound" in which:
            valid = valid_marginal_bound(digits, y_t, t, self.schedule, self.codec.mask_id)
        return PrimeLosses(published=published, valid_bound=valid)

    def cross_entropy(self, x0: torch.Tensor, t: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        """(B, L) unweighted -log p_theta(x_0^i | y_t) at every token: the image models'
        training loss (the discrete flow-matching cross-entropy, not an ELBO)."""
        if self.decoder != "joint":
            raise ValueError("the cross-entropy objective needs the joint decoder")
        if self.objective == "cross_entropy_257":  # (C+1)-way, the mask class included
            return mask_class_cross_entropy(self.network(y_t, t), x0)
        logits = self.predict(x0, t, y_t)
        out = grid_softmax(logits, y_t, self.codec, targets=x0, carry_over=self.carry_over)
        return -out.token_log_prob

    def training_loss(
        self,
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean per-token objective over the batch, and the per-token objective by name.

        For ell = 1 the published estimator and the valid bound coincide, and the cheaper
        published form is used. ``shard``: x0 is part of a larger global batch.
        """
        weight = None
        if self.masking == "at_least_one":
            t = sample_times(
                len(x0), eps=self.train_time_eps, generator=generator, device=x0.device, shard=shard
            )
            y_t, weight = mask_at_least_one(
                self.codec.encode(x0),
                self.schedule.alpha(t.double()),
                self.codec.mask_id,
                generator=generator,
                shard=shard,
            )
        else:
            t, y_t = self.corrupt(x0, generator, shard=shard)
        if self.objective in ("cross_entropy", "cross_entropy_257"):
            per_token = self.cross_entropy(x0, t, y_t)
            return per_token.mean(), {self.objective: per_token}
        name = self.objective_loss
        per_token = getattr(self.losses(x0, t, y_t, which=(name,)), name)
        if weight is not None:  # q / r of each sequence's mask
            per_token = per_token * weight.to(per_token.dtype).unsqueeze(-1)
        return per_token.mean(), {self.objective: per_token}

    @torch.no_grad()
    def sample(
        self,
        batch_size: int,
        seq_len: int,
        config: SamplerConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
    ) -> SampleResult:
        """Reverse sampling with :class:`prime.Sampler` under ``config``; its fields left
        None take this model's carry-over setting, and caching when the network ignores t."""
        config = (config or SamplerConfig()).resolved(
            carry_over=self.carry_over, use_cache=not self.time_conditioned
        )
        sampler = Sampler(self, self.codec, config, schedule=self.schedule, decoder=self.decoder)
        device = next(self.parameters()).device
        return sampler(batch_size, seq_len, generator=generator, prefix=prefix, device=device)
