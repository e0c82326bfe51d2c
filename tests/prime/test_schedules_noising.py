import math

import pytest
import torch

from prime import get_schedule, mask_subtokens, sample_times

ALL = [
    ("linear", {}),
    ("loglinear", {"eps": 1e-3}),
    ("polynomial", {"n": 3.0}),
    ("polynomial", {"n": 2.0}),
    ("cosine", {}),
    ("cosine", {"eps": 1e-3}),
]


@pytest.mark.parametrize(("name", "kwargs"), ALL)
def test_derivative_matches_autograd_and_weight_definition(name, kwargs):
    schedule = get_schedule(name, **kwargs)
    t = torch.linspace(0.01, 0.99, 41, dtype=torch.float64, requires_grad=True)
    alpha = schedule.alpha(t)
    (grad,) = torch.autograd.grad(alpha.sum(), t)
    t = t.detach()
    assert torch.allclose(schedule.d_alpha(t), grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(schedule.weight(t), -grad / (1 - alpha.detach()), rtol=1e-10)
    assert abs(float(schedule.alpha(torch.tensor(0.0, dtype=torch.float64))) - 1.0) < 1e-12
    assert (grad <= 0).all()


def test_loglinear_weight_is_one_over_t():
    # MDLM's form sigma'(t) / expm1(sigma(t)) with sigma = -log(1 - (1 - eps) t).
    eps = 1e-3
    t = torch.linspace(1e-3, 1.0, 1000, dtype=torch.float64)
    sigma = -torch.log1p(-(1 - eps) * t)
    dsigma = (1 - eps) / (1 - (1 - eps) * t)
    mdlm_weight = dsigma / torch.expm1(sigma)
    schedule = get_schedule("loglinear", eps=eps)
    assert torch.allclose(mdlm_weight, 1.0 / t, rtol=1e-10)
    assert torch.allclose(schedule.weight(t), mdlm_weight, rtol=1e-10)
    assert torch.allclose(schedule.alpha(t), torch.exp(-sigma), rtol=1e-12)


def test_polynomial_is_s_to_the_n_in_flow_time():
    schedule = get_schedule("polynomial", n=3.0)
    s = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(schedule.alpha(1 - s), s**3)


def test_unknown_schedule_lists_the_valid_names():
    with pytest.raises(ValueError, match="cosine.*linear.*loglinear.*polynomial"):
        get_schedule("quadratic")
    with pytest.raises(ValueError, match="n must be > 0"):
        get_schedule("polynomial", n=0.0)
    with pytest.raises(ValueError, match="bad arguments"):
        get_schedule("linear", eps=0.1)


def test_antithetic_times_put_one_draw_in_each_stratum():
    g = torch.Generator().manual_seed(0)
    n = 64
    t = sample_times(n, eps=0.0, generator=g, dtype=torch.float64)
    strata = torch.floor(t * n).long()
    assert torch.equal(strata, torch.arange(n))
    t = sample_times(n, eps=1e-3, generator=g)
    assert float(t.min()) >= 1e-3 and float(t.max()) < 1.0


def test_masking_keeps_each_subtoken_with_probability_alpha():
    g = torch.Generator().manual_seed(0)
    y0 = torch.randint(0, 7, (4, 2000, 3), generator=g)
    alpha = torch.tensor([0.0, 0.3, 0.7, 1.0])
    y_t = mask_subtokens(y0, alpha, mask_id=7, generator=g)
    kept = y_t != 7
    assert torch.equal(y_t[kept], y0[kept])  # nothing but masking happens
    rate = kept.double().flatten(1).mean(1)
    se = torch.sqrt(alpha * (1 - alpha) / 6000).double()
    assert ((rate - alpha.double()).abs() <= 4 * se + 1e-12).all()
    # Independence across the digits of a token: P(both kept) = alpha^2.
    both = (kept[2, :, 0] & kept[2, :, 1]).double().mean()
    assert abs(float(both) - 0.49) < 4 * math.sqrt(0.49 * 0.51 / 2000)


def test_masking_rejects_a_mismatched_alpha():
    with pytest.raises(ValueError, match="leading dimensions"):
        mask_subtokens(torch.zeros(3, 4, dtype=torch.long), torch.ones(2), mask_id=5)
    with pytest.raises(ValueError, match="leading dimensions"):
        mask_subtokens(torch.zeros(3, 4, 2, dtype=torch.long), torch.ones(3, 5), mask_id=5)


def test_per_token_alpha_masks_each_token_at_its_own_rate():
    # Block diffusion: one keep probability per token; here 0 on the first half, 1 on the rest.
    y0 = torch.zeros(2000, 6, 2, dtype=torch.long)
    alpha = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]).expand(2000, 6)
    y_t = mask_subtokens(y0, alpha, mask_id=7, generator=torch.Generator().manual_seed(0))
    assert bool((y_t[:, :3] == 7).all()) and bool((y_t[:, 3:] == 0).all())
