"""Block diffusion (BD3-LM, Arriola et al., ICLR 2025), over tokens or over sub-tokens.

A sequence x of L tokens is cut into blocks x^1..x^B of L' tokens (the last one shorter
when L' does not divide L). The likelihood is autoregressive over blocks and masked
diffusion inside a block:

    log p(x) = sum_b log p(x^b | x^{<b}),

    -log p(x^b | x^{<b})
        <= E_{t_b, y_t^b} [ sum_{i in b} w(t_b) sum_{j masked} -log p(y_0^{i,j} | y_t^b, x^{<b}) ],

each block with its own time t_b and the clean earlier blocks as context. That is the
MDLM NELBO (ell = 1, SUBS) or MDM-Prime's valid bound (ell > 1, sub-token marginals of the
joint carry-over decoder) per block, and the published estimator is reported beside it
exactly as for MDLM-Prime. So ``BlockDiffusion`` is ``MaskedDiffusion`` with two changes:
one time per block, and a network that sees x_t next to x_0 under the mask of
:mod:`baselines.block_attention`. With L' = L it is MDLM / MDLM-Prime (one block, no
context); with L' = 1 and t = 1 its loss is the next-token NLL.

Training times: t_b = beta + (omega - beta) u, u stratified over rows x blocks. The
window [beta, omega] ("clipped schedule") lowers the variance of the training loss but
makes it the NELBO of no model unless it is [eps, 1]; evaluation always uses [eps, 1].
With ``resample`` each block's realised masked fraction is kept in the window too
(:mod:`baselines.block_masks`, BD3-LM's ``training.resample``). With ``ignore_bos``
position 0 is given and unscored (:mod:`baselines.first_token`).
:meth:`BlockDiffusion.window_variances` scores candidate windows by the variance of the
per-block mean loss, the data-driven search of BD3-LM (:mod:`baselines.clipped_windows`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from prime import (
    BatchShard,
    MaskedDiffusion,
    SamplerConfig,
    SampleResult,
    Schedule,
    SubTokenizer,
    mask_subtokens,
    sample_times,
)

from .block_attention import AttentionBackend, training_mask
from .block_masks import mask_blocks_in_window
from .block_sampler import expected_block_idle_ratio, sample_blocks
from .clipped_windows import DEFAULT_WINDOWS, variances_from_moments, window_moments
from .first_token import FirstTokenGiven, give_first

__all__ = ["BlockDiffusion"]


class BlockDiffusion(FirstTokenGiven, MaskedDiffusion):
    """Masked diffusion inside blocks of ``block_size`` tokens, autoregressive across them.

    Args:
        network: maps (y (B, N, ell), t, positions=(N,), mask=..., outputs=n) to
            (B, n, out_dim) (the first n positions' outputs), and accepts a ``cache`` for
            sampling with cached keys (``prime.backbones.DiT``). It must ignore t
            (``time_conditioned = False``): blocks have different times.
        codec, schedule, decoder, carry_over, objective, time_eps: as in
            :class:`prime.MaskedDiffusion`.
        block_size: L'.
        window: training times [beta, omega]; None: [time_eps, 1], the unbiased NELBO.
        attention: "auto" (flex attention on CUDA, SDPA elsewhere), "sdpa" or "flex".
        resample: keep each block's masked fraction in the window (an end of it that is
            eps or 1 is not enforced), as BD3-LM's ``training.resample``.
        ignore_bos: position 0 is never masked and not scored; samples start from
            ``bos_id`` there (BD3-LM's ``algo.ignore_bos``).
    """

    def __init__(
        self,
        network: nn.Module,
        codec: SubTokenizer,
        block_size: int,
        schedule: str | Schedule = "loglinear",
        *,
        decoder: str = "joint",
        carry_over: bool = True,
        objective: str = "valid",
        time_eps: float = 1e-3,
        window: tuple[float, float] | None = None,
        attention: AttentionBackend = "auto",
        resample: bool = False,
        ignore_bos: bool = False,
        bos_id: int | None = None,
    ):
        if objective in ("cross_entropy", "cross_entropy_257"):
            raise ValueError("block diffusion trains on a likelihood bound, not cross_entropy")
        super().__init__(
            network,
            codec,
            schedule,
            decoder=decoder,
            carry_over=carry_over,
            objective=objective,
            time_eps=time_eps,
        )
        if getattr(network, "time_conditioned", True):
            raise ValueError(
                "block diffusion needs a network that ignores t (time_conditioned=False): "
                "the blocks of one sequence have different times"
            )
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self.attention: AttentionBackend = attention
        self.resample = resample
        if ignore_bos and bos_id is None:
            raise ValueError("ignore_bos: samples start from the BOS token, but bos_id is None")
        self.ignore_bos, self.bos_id = ignore_bos, bos_id
        # A buffer: checkpoints keep the window the search last chose.
        self.register_buffer(
            "window", torch.tensor(self._check_window(window), dtype=torch.float64)
        )

    def _check_window(self, window: Sequence[float] | None) -> tuple[float, float]:
        beta, omega = (self.time_eps, 1.0) if window is None else (float(w) for w in window)
        if not 0.0 <= beta < omega <= 1.0:
            raise ValueError(f"window must satisfy 0 <= beta < omega <= 1, got [{beta}, {omega}]")
        return max(beta, self.time_eps), omega

    @property
    def training_window(self) -> tuple[float, float]:
        beta, omega = self.window.tolist()
        return beta, omega

    def set_window(self, window: Sequence[float]) -> None:
        self.window.copy_(torch.tensor(self._check_window(window), dtype=torch.float64))

    def num_blocks(self, seq_len: int) -> int:
        return math.ceil(seq_len / self.block_size)

    def token_times(self, t: torch.Tensor, seq_len: int) -> torch.Tensor:
        """Per-block times (B, blocks) -> per-token times (B, L); (B,) is one block."""
        if t.dim() == 1:
            return t
        return t.repeat_interleave(self.block_size, dim=1)[:, :seq_len]

    def evaluation_card(self) -> dict[str, object]:
        beta, omega = self.training_window
        return {
            **super().evaluation_card(),
            "diffusion_block": self.block_size,
            "training_window_beta": beta,
            "training_window_omega": omega,
            "note": "evaluated over the full window [eps, 1]: the unbiased block NELBO",
            **({"ignore_bos": True} if self.ignore_bos else {}),
        }

    def expected_idle_ratio(self, num_steps: int, seq_len: int, eps: float = 1e-5) -> float:
        """Closed form per block (:func:`baselines.block_sampler.expected_block_idle_ratio`)."""
        args = (num_steps, seq_len, self.block_size, self.ell, self.schedule)
        return expected_block_idle_ratio(*args, first_given=self.ignore_bos, eps=eps)

    def corrupt(
        self,
        x0: torch.Tensor,
        generator: torch.Generator | None = None,
        antithetic: bool = True,
        shard: BatchShard | None = None,
        window: Sequence[float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(t (B, blocks), y_t (B, L, ell)): one time per block, stratified over all the
        blocks of the (global) batch, or of each group of ``shard.strata`` rows, in
        ``window`` (default: the training window); position 0 unmasked with ``ignore_bos``."""
        batch, seq_len = x0.shape
        blocks = self.num_blocks(seq_len)
        beta, omega = self.training_window if window is None else self._check_window(window)
        # Row-major (row, block): a group of n rows has n x blocks strata, as bd3lms's
        # _sample_t over the rows x blocks of each forward call (diffusion.py:768-789).
        block_shard = None if shard is None else shard.per_row(blocks)
        t = sample_times(
            batch * blocks,
            eps=beta,
            high=omega,
            antithetic=antithetic,
            generator=generator,
            device=x0.device,
            shard=block_shard,
        ).view(batch, blocks)
        # bd3lms enforces an end unless it is that of the full window (diffusion.py:484-493).
        low, high = beta > self.time_eps, omega < 1.0
        if self.resample and (low or high):
            mask_prob = 1.0 - self.schedule.alpha(t.double())
            y_t = mask_blocks_in_window(
                self.codec.encode(x0),
                mask_prob,
                self.block_size,
                (beta, omega),
                self.codec.mask_id,
                low=low,
                high=high,
                generator=generator,
                shard=shard,
            )
        else:
            alpha = self.schedule.alpha(self.token_times(t, seq_len).double())
            y_t = mask_subtokens(
                self.codec.encode(x0), alpha, self.codec.mask_id, generator=generator, shard=shard
            )
        return t, give_first(y_t, self.codec.encode(x0)) if self.ignore_bos else y_t

    def predict(self, x0: torch.Tensor, t: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        """Logits of the noised half of the 2L-position pass over (x_t, x_0)."""
        seq_len = x0.shape[1]
        y_in = torch.cat([y_t, self.codec.encode(x0)], dim=1)
        positions = torch.arange(seq_len, device=x0.device).repeat(2)
        mask = training_mask(seq_len, self.block_size, x0.device, self.attention)
        return self.network(y_in, None, positions=positions, mask=mask, outputs=seq_len)

    def block_losses(self, per_token: torch.Tensor) -> torch.Tensor:
        """Per-token losses (B, L) summed within blocks: (B, blocks)."""
        batch, seq_len = per_token.shape
        pad = self.num_blocks(seq_len) * self.block_size - seq_len
        padded = torch.nn.functional.pad(per_token, (0, pad))
        return padded.view(batch, -1, self.block_size).sum(-1)

    @torch.no_grad()
    def block_mean_losses(
        self,
        x0: torch.Tensor,
        window: Sequence[float],
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
    ) -> torch.Tensor:
        """(B, blocks) per-token training loss averaged within each block, at times and
        masks drawn in ``window``: what BD3-LM's window search takes the variance of."""
        t, y_t = self.corrupt(x0, generator, shard=shard, window=window)
        name = self.objective_loss
        per_token = getattr(self.losses(x0, t, y_t, which=(name,)), name).double()
        sizes = self.block_losses(torch.ones_like(per_token[:1]))
        return self.block_losses(per_token) / sizes

    def window_variances(
        self,
        x0: torch.Tensor,
        windows: Sequence[tuple[float, float]] = DEFAULT_WINDOWS,
        seed: int = 0,
        batch_rows: int = 0,
    ) -> torch.Tensor:
        """(K,) each window's variance of the per-block mean loss over each batch of
        ``batch_rows`` rows of x0 (0: one batch), summed over the batches."""
        moments = window_moments(self, x0, windows, seed, batch_rows, device=x0.device)
        return variances_from_moments(moments).sum(-1)

    def search_window(
        self,
        x0: torch.Tensor,
        windows: Sequence[tuple[float, float]] = DEFAULT_WINDOWS,
        seed: int = 0,
        batch_rows: int = 0,
    ) -> tuple[float, float]:
        """Set the training window to the candidate of least summed variance."""
        variances = self.window_variances(x0, windows, seed, batch_rows)
        self.set_window(windows[int(variances.argmin())])
        return self.training_window

    @torch.no_grad()
    def sample(
        self,
        batch_size: int,
        seq_len: int,
        config: SamplerConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        prefix: torch.Tensor | None = None,
        kv_cache: bool = True,
        context_blocks: int | None = None,
    ) -> SampleResult:
        """Block-by-block sampling (:func:`baselines.block_sampler.sample_blocks`),
        ``config.steps`` per block; ``kv_cache`` keeps the keys of finished blocks,
        ``context_blocks`` limits how many of them a block attends to (None: all)."""
        if prefix is not None:
            raise ValueError("prefix: block diffusion samples from the first block on")
        config = (config or SamplerConfig()).resolved(carry_over=self.carry_over, use_cache=True)
        return sample_blocks(
            self.network,
            self.codec,
            self.block_size,
            config,
            batch_size=batch_size,
            seq_len=seq_len,
            schedule=self.schedule,
            decoder=self.decoder,
            kv_cache=kv_cache,
            context_blocks=context_blocks,
            generator=generator,
            device=self.window.device,
            first_token=self.first_token(),
        )
