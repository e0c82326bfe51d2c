"""Sampler options of the image experiments: sub-token proposals, temperature, corrector,
warped grids; every path works for ell = 1."""

import pytest
import torch

from prime import (
    Sampler,
    SamplerConfig,
    SampleResult,
    SubTokenizer,
    corrector_schedule,
    temperature_schedule,
    warped_grid,
)


def peaked(codec: SubTokenizer, favourite: int, strength: float = 1.0):
    def denoiser(y_t, t):
        logits = torch.zeros(*y_t.shape[:-1], codec.num_classes)
        logits[..., favourite] = strength
        return logits

    return denoiser


def test_warped_grid_and_schedules():
    plain = warped_grid(8)
    assert torch.allclose(plain, 1 - torch.arange(9, dtype=torch.float64) / 8)
    assert torch.equal(warped_grid(8, 1.0, 0.0, 0.0), plain)  # [1, 0, 0] means off
    warped = warped_grid(8, 1.0, 1.7, 0.0)
    assert warped[0] == 1.0 and warped[-1] == 0.0 and (warped[1:] < warped[:-1]).all()
    assert (warped[1:-1] < plain[1:-1]).all()  # 1.7 spends the steps near the data end
    tau = temperature_schedule(-0.2, 2.0, 1.0)  # the paper's CIFAR-10 setting
    assert tau(1.0) == 1.0 and tau(0.0) == pytest.approx(0.8)
    kappa = corrector_schedule(16.0, 2.0, 0.75)
    assert kappa(0.0) == kappa(1.0) == 0.0 and kappa(0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not positive"):
        temperature_schedule(-2.0, 1.0, 1.0)


@pytest.mark.parametrize("ell", [1, 2])
def test_every_option_works_and_unit_temperature_changes_nothing(ell):
    codec = SubTokenizer(256, ell)
    net = peaked(codec, 200)
    for proposal in ("token", "subtoken"):

        def draw(seed: int, proposal: str = proposal, **settings) -> SampleResult:
            config = SamplerConfig(steps=10, proposal=proposal, **settings)
            sampler = Sampler(net, codec, config, schedule="polynomial")
            return sampler(3, 12, generator=torch.Generator().manual_seed(seed))

        base = draw(0)
        # tau = 1 (a = 0, c = 1) and kappa = 0 (a = 0) leave every draw as it was.
        same = draw(0, temperature=(0.0, 1.0, 1.0), corrector=(0.0, 2.0, 0.0))
        assert torch.equal(base.tokens, same.tokens)
        full = draw(
            1, temperature=(-0.2, 2, 1), corrector=(16.0, 2.0, 0.0), time_warp=(1.0, 1.7, 0.0)
        )
        assert (full.tokens < 256).all() and (full.subtokens != codec.mask_id).all()


def test_low_temperature_concentrates_on_the_mode():
    codec = SubTokenizer(256, 2)
    result = Sampler(
        peaked(codec, 77, 1.0), codec, SamplerConfig(steps=8, temperature=(0.0, 1.0, 0.02))
    )(4, 64, generator=torch.Generator().manual_seed(2))
    assert (result.tokens == 77).float().mean() > 0.99


def test_corrector_remasks_revealed_subtokens():
    codec = SubTokenizer(256, 2)
    remasked = []

    def watch(k, before, after):
        remasked.append(int(((before != codec.mask_id) & (after == codec.mask_id)).sum()))

    result = Sampler(
        peaked(codec, 5),
        codec,
        SamplerConfig(steps=32, corrector=(16.0, 2.0, 0.0)),
        schedule="polynomial",
    )(4, 64, on_step=watch, generator=torch.Generator().manual_seed(3))
    assert sum(remasked) > 0
    assert (result.subtokens != codec.mask_id).all()


def test_subtoken_proposals_can_form_invalid_codes():
    # C = 50, ell = 2, b = 8: digits drawn independently from their marginals can combine
    # into codes >= 50 when both are revealed in the same step; token proposals cannot.
    codec = SubTokenizer(50, 2)
    uniform = peaked(codec, 0, 0.0)
    marg, tok = (
        Sampler(uniform, codec, SamplerConfig(steps=2, proposal=proposal))(
            32, 64, generator=torch.Generator().manual_seed(4)
        )
        for proposal in ("subtoken", "token")
    )
    assert marg.invalid_rate > 0.0 and tok.invalid_rate == 0.0
    with pytest.raises(ValueError, match="joint decoder"):
        Sampler(uniform, codec, SamplerConfig(proposal="subtoken"), decoder="independent")


def test_polynomial_schedule_idle_steps_and_nfe_follow_the_closed_form():
    import math

    from prime import idle_step_probabilities

    codec = SubTokenizer(256, 2)
    steps, length, runs = 256, 32, 32
    result = Sampler(
        peaked(codec, 1, 0.0), codec, SamplerConfig(steps=steps, eps=0.0), schedule="polynomial"
    )(runs, length, generator=torch.Generator().manual_seed(5))
    probs = idle_step_probabilities(steps, length, 2, "polynomial")
    se = math.sqrt(float((probs * (1 - probs)).sum()) / runs)
    assert abs(float(result.idle_steps.double().mean()) - float(probs.sum())) < 3 * se
    # no time input: cached; a grid down to t = 0 makes no final call (N calls, N steps)
    assert result.nfe == steps - result.batch_idle_steps


@pytest.mark.parametrize("ell", [2, 4, 8])
def test_pixel_sampler_with_carry_over_keeps_revealed_digits_and_valid_values(ell):
    # 8-bit pixels: b**ell == 256 for ell in {2, 4, 8}, so no code can exceed 255, and
    # without a corrector a revealed digit never changes, whichever proposal is used.
    codec = SubTokenizer(256, ell)
    noise = torch.Generator().manual_seed(ell)

    def random_net(y_t, t):
        return 4.0 * torch.randn(*y_t.shape[:-1], 256, generator=noise)

    def check(k, before, after):
        revealed = before != codec.mask_id
        assert torch.equal(after[revealed], before[revealed])

    for proposal in ("token", "subtoken"):
        result = Sampler(
            random_net,
            codec,
            SamplerConfig(
                steps=12, proposal=proposal, temperature=(-0.2, 2.0, 1.0), time_warp=(1.0, 1.7, 0.0)
            ),
            schedule="polynomial",
        )(4, 48, on_step=check, generator=torch.Generator().manual_seed(0))
        assert (result.tokens < 256).all() and result.invalid_rate == 0.0
