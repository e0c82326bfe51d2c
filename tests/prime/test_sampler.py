import math

import pytest
import torch

from prime import (
    Sampler,
    SamplerConfig,
    SampleResult,
    SubTokenizer,
    get_schedule,
    idle_step_probabilities,
    sample_categorical,
    time_of_alpha,
    top_p_filter,
)
from tests.helpers import ExactPosterior


def uniform_joint(codec: SubTokenizer):
    def denoiser(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*y_t.shape[:-1], codec.num_classes)

    return denoiser


def uniform_independent(codec: SubTokenizer):
    def denoiser(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*y_t.shape, codec.base)

    return denoiser


def table_denoiser(codec: SubTokenizer, seed: int = 0):
    """A deterministic, time-independent network: logits are sums of per-digit rows of a
    fixed random table, plus the mean of all rows (so tokens depend on each other)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(codec.ell, codec.base + 1, codec.num_classes, generator=g)

    def denoiser(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        rows = sum(table[j][y_t[..., j]] for j in range(codec.ell))
        return 2.0 * rows + rows.mean(dim=1, keepdim=True)

    return denoiser


@pytest.mark.slow
@pytest.mark.parametrize("ell", [1, 2, 4, 8])
def test_simulated_idle_ratio_matches_the_closed_form(ell):
    # L = T = 1024 as in the paper's Table 1; the network plays no role in idling.
    codec = SubTokenizer(4, ell)
    runs, length, steps = 24, 1024, 1024
    result = Sampler(uniform_joint(codec), codec, SamplerConfig(steps=steps))(
        runs, length, generator=torch.Generator().manual_seed(ell)
    )
    probs = idle_step_probabilities(steps, length, ell, eps=1e-5)  # the sampler's grid
    expected = float(probs.sum())
    # Idle indicators of different steps are negatively correlated (a fixed number of
    # sub-tokens is spread over the steps), so sum p(1-p) bounds the variance.
    se = math.sqrt(float((probs * (1 - probs)).sum()) / runs)
    mean = float(result.idle_steps.double().mean())
    assert abs(mean - expected) <= 3 * se, (mean, expected, se)
    assert result.idle_ratio.shape == (runs,)


@pytest.mark.parametrize(("num_classes", "ell"), [(50, 2), (100, 3), (50257, 2)])
def test_carry_over_never_changes_revealed_digits_nor_yields_invalid_codes(num_classes, ell):
    codec = SubTokenizer(num_classes, ell)
    assert codec.num_invalid_codes > 0
    noise = torch.Generator().manual_seed(1)

    def random_net(y_t, t):
        return 3.0 * torch.randn(*y_t.shape[:-1], num_classes, generator=noise)

    def check(step, before, after):
        revealed = before != codec.mask_id
        assert torch.equal(after[revealed], before[revealed])
        # Every partially revealed token can still become a real token.
        assert codec.consistent_mask(after).any(-1).all()

    result = Sampler(random_net, codec, SamplerConfig(steps=12))(
        4, 16, on_step=check, generator=torch.Generator().manual_seed(2)
    )
    assert (result.tokens < num_classes).all() and result.invalid_rate == 0.0
    assert (result.subtokens != codec.mask_id).all()


def test_independent_decoder_without_carry_over_produces_invalid_codes():
    # Toy setting: C = 512, ell = 2, b = 23 -> 17 of the 529 codes are invalid. With
    # uniform digit logits every code is equally likely: invalid rate 17/529.
    codec = SubTokenizer(512, 2)
    result = Sampler(
        uniform_independent(codec),
        codec,
        SamplerConfig(carry_over=False, steps=32),
        decoder="independent",
    )(64, 256, generator=torch.Generator().manual_seed(3))
    p = 17 / 529
    se = math.sqrt(p * (1 - p) / result.tokens.numel())
    assert abs(result.invalid_rate - p) < 4 * se
    # When b**ell == C there is nothing invalid to produce.
    exact = SubTokenizer(256, 2)
    clean = Sampler(
        uniform_independent(exact),
        exact,
        SamplerConfig(carry_over=False, steps=8),
        decoder="independent",
    )(8, 64, generator=torch.Generator().manual_seed(4))
    assert clean.invalid_rate == 0.0


def test_joint_decoder_without_carry_over_can_combine_digits_into_invalid_codes():
    codec = SubTokenizer(512, 2)
    without, with_co = (
        Sampler(uniform_joint(codec), codec, SamplerConfig(steps=16, carry_over=carry_over))(
            16, 256, generator=torch.Generator().manual_seed(5)
        )
        for carry_over in (False, True)
    )
    assert without.invalid_rate > 0.0
    assert with_co.invalid_rate == 0.0


@pytest.mark.parametrize("ell", [1, 2, 3])
def test_caching_saves_exactly_the_idle_steps_and_changes_no_sample(ell):
    codec = SubTokenizer(27, ell)
    calls = {"n": 0}
    net = table_denoiser(codec)

    def counted(y_t, t):
        calls["n"] += 1
        return net(y_t, t)

    def run(denoiser, use_cache: bool) -> SampleResult:
        config = SamplerConfig(steps=128, use_cache=use_cache)
        return Sampler(denoiser, codec, config)(3, 8, generator=torch.Generator().manual_seed(6))

    cached = run(counted, True)
    assert calls["n"] == cached.nfe
    uncached = run(net, False)
    assert cached.batch_idle_steps > 0
    assert cached.nfe == 128 + 1 - cached.batch_idle_steps  # T steps + the final one
    assert uncached.nfe == 128 + 1
    assert torch.equal(cached.subtokens, uncached.subtokens)
    assert torch.equal(cached.idle_steps, uncached.idle_steps)
    assert cached.batch_idle_steps <= int(cached.idle_steps.min())


def test_single_token_sampling_with_the_exact_posterior_is_exact():
    # With one token, drawing x ~ p(x | y_t) and revealing any subset of its digits is an
    # exact reverse step for every T: the samples follow the data pmf (chi-square test).
    g = torch.Generator().manual_seed(7)
    codec = SubTokenizer(27, 3)
    pmf = torch.empty(27, dtype=torch.float64).exponential_(generator=g)
    pmf /= pmf.sum()
    exact = ExactPosterior(pmf, codec, seq_len=1)
    n = 40000
    result = Sampler(exact.logits, codec, SamplerConfig(steps=5))(n, 1, generator=g)
    counts = torch.bincount(result.tokens.flatten(), minlength=27).double()
    chi2 = float(((counts - n * pmf) ** 2 / (n * pmf)).sum())
    assert (chi2 - 26) / math.sqrt(2 * 26) < 4, chi2


def test_prefix_is_kept_and_dtypes_are_honoured():
    codec = SubTokenizer(50, 2)
    prefix = torch.tensor([3, 49, 0])
    for dtype in (torch.float32, torch.float64):
        result = Sampler(
            table_denoiser(codec), codec, SamplerConfig(steps=6, sampling_dtype=dtype, top_p=0.9)
        )(4, 10, prefix=prefix, generator=torch.Generator().manual_seed(8))
        assert torch.equal(result.tokens[:, :3], prefix.expand(4, -1))
    with pytest.raises(ValueError, match="prefix"):
        Sampler(table_denoiser(codec), codec, SamplerConfig(steps=2))(4, 2, prefix=prefix)
    with pytest.raises(ValueError, match="decoder"):
        Sampler(table_denoiser(codec), codec, SamplerConfig(steps=2), decoder="x")(1, 2)


def test_top_p_keeps_the_classes_whose_cumulative_mass_stays_within_p():
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.1], [0.05, 0.9, 0.03, 0.02]], dtype=torch.float64)
    out = top_p_filter(probs, 0.75)  # 0.5 + 0.25 = 0.75 <= p: both kept
    assert torch.allclose(out[0], torch.tensor([2 / 3, 1 / 3, 0, 0], dtype=torch.float64))
    assert torch.allclose(out[1], torch.tensor([0, 1.0, 0, 0], dtype=torch.float64))
    # MDLM's rule drops the class that crosses p (0.5 + 0.25 > 0.7); the best always stays
    out = top_p_filter(probs, 0.7)
    assert torch.allclose(out, torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], dtype=torch.float64))
    assert torch.equal(top_p_filter(probs, 1.0), probs)


def test_categorical_draws_follow_the_probabilities():
    g = torch.Generator().manual_seed(9)
    probs = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64).expand(60000, 3)
    freq = torch.bincount(sample_categorical(probs, g), minlength=3).double() / 60000
    assert torch.allclose(freq, probs[0], atol=4 * math.sqrt(0.25 / 60000))


def test_time_of_alpha_inverts_every_schedule():
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    for name in ("linear", "loglinear", "polynomial", "cosine"):
        schedule = get_schedule(name)
        assert torch.allclose(time_of_alpha(schedule, schedule.alpha(t)), t, atol=1e-9)


def test_final_argmax_fills_the_last_masks_with_the_most_likely_token():
    codec = SubTokenizer(5, 1)

    def peaked(y, t):  # token 3 most likely everywhere, every token possible
        logits = torch.zeros(*y.shape[:2], 5)
        logits[..., 3] = 1.0
        return logits

    def run(final_argmax: bool) -> SampleResult:
        # one step from t = 1 to t = 0.9: most positions stay masked for the final step
        config = SamplerConfig(steps=1, eps=0.9, final_argmax=final_argmax, use_cache=False)
        return Sampler(peaked, codec, config)(200, 16, generator=torch.Generator().manual_seed(1))

    drawn, best = run(False), run(True)
    assert (drawn.tokens != 3).float().mean() > 0.3  # a draw: other tokens too
    revealed_early = best.subtokens[..., 0] != 3
    # with the argmax only the first transition's reveals can be anything but 3
    assert float(revealed_early.float().mean()) < 0.15
    with pytest.raises(ValueError, match="ell = 1"):
        Sampler(peaked, SubTokenizer(9, 2), SamplerConfig(final_argmax=True))


def test_the_final_noise_removal_draws_from_the_whole_distribution():
    # Tokens 0 and 1 with probabilities 0.6 and 0.4 everywhere; top-p 0.5 keeps token 0
    # alone at every step, but the last step (t = eps, here most tokens still masked)
    # fills from the whole distribution, as the MDLM code base's final step does.
    codec = SubTokenizer(2, 1)
    logits = torch.log(torch.tensor([0.6, 0.4]))

    def denoiser(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return logits.expand(*y_t.shape[:-1], 2)

    config = SamplerConfig(steps=2, top_p=0.5, eps=0.9)
    result = Sampler(denoiser, codec, config)(200, 50, generator=torch.Generator().manual_seed(0))
    ones = float((result.tokens == 1).double().mean())
    # Revealed before the last step with probability 1 - 0.9 = 0.1 (always token 0), at
    # the last step from (0.6, 0.4): P(token 1) = 0.9 x 0.4 = 0.36, over 10,000 tokens.
    assert abs(ones - 0.36) < 4 * math.sqrt(0.36 * 0.64 / 10_000)
    before_last = Sampler(denoiser, codec, SamplerConfig(steps=2, top_p=0.5, eps=0.0))(
        200, 50, generator=torch.Generator().manual_seed(0)
    )
    assert not (before_last.tokens == 1).any()  # a grid down to t = 0: top-p throughout
