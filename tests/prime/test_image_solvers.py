"""The image sampler has the law of the authors' two image solvers (image/utils/solver.py).

Two pixels of C = 4 values, ell = 2 binary digits each: 16 outcomes. The "network" is the
exact posterior of a fixed data law over the 16 outcomes, blurred toward uniform by a
weight that depends on time; the blur puts mass on tokens inconsistent with the revealed
digits, as an unrestricted trained network does, so that restricting the softmax to the
consistent tokens (the text models' carry-over) changes the law.

The authors' solvers are re-stated below from their update rule, in flow time s (alpha =
s^3), on vectors over the b + 1 sub-token states: the predictor's categorical over
[(alpha_s' - alpha_s)/(1 - alpha_s) m, (1 - alpha_s')/(1 - alpha_s)] for each masked
digit; the corrector's rate vector u = A delta_0 + kappa B [(1 - alpha) delta_mask +
alpha delta_0] with the current state's entry zeroed, a jump with probability
1 - exp(-h sum u) to Cat(u / sum u); the last of the N network calls fills every mask.
"Carry-over" draws each digit from its marginal (and delta_0 afresh); "no carry-over"
draws one token per pixel and uses its digits for both. Both compare with the suite's
sampler by total variation of the 16-outcome histograms, within Monte-Carlo error.
"""

from __future__ import annotations

import math

import pytest
import torch

from prime import Sampler, SamplerConfig, SubTokenizer

C, ELL, PIXELS = 4, 2, 2
N_STEPS = 6
TEMPERATURE = (-0.2, 2.0, 1.0)
CORRECTOR = (16.0, 2.0, 0.75)
TIME_WARP = (1.0, 1.7, 0.0)
DRAWS = 40_000
WATCHED = 4  # the step after which the states (masks included) are compared too
CODEC = SubTokenizer(C, ELL)
B, MASK = CODEC.base, CODEC.mask_id
# A fixed law over the 16 (x_0, x_1) pairs, correlated between the pixels and within
# each pixel between its digits (most mass on the codes 00 and 11), so that drawing the
# digits of a pixel independently shows.
LAW = torch.tensor(
    [
        [0.30, 0.01, 0.02, 0.06],
        [0.01, 0.02, 0.01, 0.03],
        [0.02, 0.01, 0.02, 0.01],
        [0.08, 0.02, 0.03, 0.35],
    ],
    dtype=torch.float64,
)
LAW = LAW / LAW.sum()


def network_probs(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """(R, 2, C) per-pixel token probabilities at sub-token states y (R, 2, ell), flow time
    s (R,): the exact posterior marginal of each pixel, blurred by w(s) = 0.6 - 0.3 s."""
    digits = CODEC.digits  # (C, ell)
    fits = ((digits[None, None] == y[:, :, None]) | (y[:, :, None] == MASK)).all(-1)  # (R,2,C)
    joint = LAW[None] * fits[:, 0, :, None] * fits[:, 1, None, :]  # (R, C, C)
    joint = joint / joint.sum((1, 2), keepdim=True)
    posterior = torch.stack([joint.sum(2), joint.sum(1)], dim=1)
    w = (0.6 - 0.3 * s.double())[:, None, None]
    return (1 - w) * posterior + w / C


def suite_denoiser(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return network_probs(y, 1.0 - t).log().float()


def _tw(s: float) -> float:
    a, beta, c = TIME_WARP
    return 1.0 - a * (1.0 - s) ** beta + c


def _tau(s: float) -> float:
    a, beta, c = TEMPERATURE
    return a * s**beta + c


def _kappa(s: float) -> float:
    a, beta, _ = CORRECTOR
    return a * s**beta * (1.0 - s) ** beta


def _categorical(weights: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flat = weights.reshape(-1, weights.shape[-1])
    return torch.multinomial(flat, 1, generator=gen).view(weights.shape[:-1])


def authors_sample(
    carry_over: bool, n: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2) tokens drawn by the re-stated authors' solver, and (n, 2, ell) the sub-token
    states after the step at index ``WATCHED``."""
    y = torch.full((n, PIXELS, ELL), MASK, dtype=torch.long)
    watched = y
    grid = [_tw(i / N_STEPS) for i in range(N_STEPS)]
    for i, s in enumerate(grid):
        sv = torch.full((n,), s, dtype=torch.float64)
        logits = network_probs(y, sv).log() / _tau(s)
        p = torch.softmax(logits, dim=-1)  # (n, 2, C)
        onehot = torch.nn.functional.one_hot(CODEC.digits, B).double()  # (C, ell, b)
        marg = torch.einsum("rpc,cjv->rpjv", p, onehot)  # (n, 2, ell, b)
        masked = y == MASK
        if carry_over:
            clean = _categorical(marg, gen)
        else:
            clean = CODEC.digits[_categorical(p, gen)]
        if i == N_STEPS - 1:
            return CODEC.decode(torch.where(masked, clean, y)), watched
        s_next = grid[i + 1]
        a, a_next = s**3, s_next**3
        states = torch.zeros(n, PIXELS, ELL, B + 1, dtype=torch.float64)
        if carry_over:
            states[..., :B] = (a_next - a) / (1 - a) * marg
        else:
            states[..., :B] = (a_next - a) / (1 - a) * torch.nn.functional.one_hot(clean, B)
        states[..., B] = (1 - a_next) / (1 - a)
        y = torch.where(masked, _categorical(states, gen), y)
        if not 0.0 < a < 1.0:  # the rates are 0/0 at s = 0
            continue
        delta0 = _categorical(marg, gen) if carry_over else clean
        da, h = 3 * s**2, s_next - s
        d0 = torch.nn.functional.one_hot(delta0, B + 1).double()
        dm = torch.nn.functional.one_hot(torch.full_like(y, MASK), B + 1).double()
        u = da / (1 - a) * d0 + _kappa(s) * da / (a * (1 - a)) * ((1 - a) * dm + a * d0)
        u = u.masked_fill(torch.nn.functional.one_hot(y, B + 1).bool(), 0.0)
        total = u.sum(-1)
        jump = torch.rand(y.shape, generator=gen, dtype=torch.float64) < 1 - torch.exp(-h * total)
        target = _categorical(u.clamp_min(0) + (total == 0)[..., None] * dm, gen)
        y = torch.where(jump, target, y)
        if i == WATCHED:
            watched = y
    raise AssertionError("unreachable")


def suite_sample(
    proposal: str, restricted: bool, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    config = SamplerConfig(
        steps=N_STEPS,
        proposal=proposal,
        carry_over=restricted,
        temperature=TEMPERATURE,
        corrector=CORRECTOR,
        time_warp=TIME_WARP,
        use_cache=False,
    )
    sampler = Sampler(suite_denoiser, CODEC, config, schedule="polynomial")
    watched = {}

    def watch(k: int, before: torch.Tensor, after: torch.Tensor) -> None:
        if k == WATCHED:
            watched["y"] = after

    result = sampler(n, PIXELS, generator=torch.Generator().manual_seed(seed), on_step=watch)
    assert result.nfe == N_STEPS  # the authors' solvers: one call per step, none after
    return result.tokens, watched["y"]


def histograms(draws: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies of the 16 final token pairs and of the 81 watched sub-token states."""
    tokens, states = draws
    final = tokens[:, 0] * C + tokens[:, 1]
    codes = (states.reshape(len(states), -1) * (B + 1) ** torch.arange(PIXELS * ELL)).sum(1)
    return (
        torch.bincount(final, minlength=C * C).double() / len(final),
        torch.bincount(codes, minlength=(B + 1) ** (PIXELS * ELL)).double() / len(codes),
    )


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def mc_tv_scale(p: torch.Tensor, n: int) -> float:
    """Expected TV between two n-sample histograms of the law p: sum_k sqrt(2 p_k / n)
    sqrt(2 / pi) / 2 (each difference is about normal with variance 2 p_k (1 - p_k) / n)."""
    return 0.5 * math.sqrt(2 / math.pi) * float(torch.sqrt(2 * p / n).sum())


@pytest.mark.slow
@pytest.mark.parametrize(("carry_over", "proposal"), [(True, "subtoken"), (False, "token")])
def test_suite_sampler_has_the_law_of_the_authors_solver(carry_over, proposal):
    authors = histograms(authors_sample(carry_over, DRAWS, torch.Generator().manual_seed(1)))
    suite = histograms(suite_sample(proposal, False, DRAWS, seed=2))
    # Power: the other solver, and the softmax restricted to consistent tokens.
    other = histograms(suite_sample("token" if carry_over else "subtoken", False, DRAWS, 3))
    restricted = histograms(suite_sample(proposal, True, DRAWS, seed=4))
    for a, s in zip(authors, suite, strict=True):
        scale = mc_tv_scale(0.5 * (a + s), DRAWS)
        assert tv(a, s) < 3 * scale, (tv(a, s), scale)
    scale = mc_tv_scale(authors[0], DRAWS)
    assert tv(authors[0], other[0]) > 6 * scale
    assert tv(authors[0], restricted[0]) > 5 * scale
