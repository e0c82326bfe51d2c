"""The two losses: reductions to MDLM, and exact likelihoods of enumerable distributions."""

import math

import pytest
import torch

from prime import (
    SubTokenizer,
    get_schedule,
    independent_log_probs,
    joint_decoder_losses,
    joint_log_probs,
    mask_subtokens,
    sample_times,
    subs_log_probs,
    subtoken_log_marginals,
)
from tests.helpers import ExactPosterior, entropy


def test_ell_one_joint_carry_over_is_subs():
    g = torch.Generator().manual_seed(0)
    c = 11
    codec = SubTokenizer(c, 1)
    assert codec.mask_id == c  # b = C for ell = 1: the mask sub-token is MDLM's mask token
    x0 = torch.randint(0, c, (4, 9), generator=g)
    x_t = torch.where(torch.rand(4, 9, generator=g) < 0.5, x0, c)
    logits = torch.randn(4, 9, c + 1, generator=g)
    subs = subs_log_probs(logits, x_t, mask_id=c)
    joint = joint_log_probs(logits[..., :c], x_t.unsqueeze(-1), codec, carry_over=True)
    assert torch.equal(torch.isinf(subs), torch.isinf(joint))
    assert torch.allclose(subs[~torch.isinf(subs)], joint[~torch.isinf(joint)], atol=1e-6)


@pytest.mark.parametrize("schedule", ["loglinear", "linear", "polynomial"])
def test_ell_one_both_losses_equal_the_mdlm_loss(schedule):
    g = torch.Generator().manual_seed(1)
    c, b, n = 50, 8, 33
    sched = get_schedule(schedule)
    codec = SubTokenizer(c, 1)
    x0 = torch.randint(0, c, (b, n), generator=g)
    t = sample_times(b, generator=g)
    x_t = mask_subtokens(x0, sched.alpha(t), mask_id=c, generator=g)
    logits = torch.randn(b, n, c, generator=g, dtype=torch.float64)
    # MDLM's continuous-time SUBS loss, written out: w(t) * -log p(x0 | x_t) at masked
    # positions (SUBS makes unmasked positions contribute exactly 0).
    w = 1.0 / t.double() if schedule != "polynomial" else sched.weight(t.double())
    mdlm = w[:, None] * -subs_log_probs(logits, x_t, c).gather(-1, x0[..., None]).squeeze(-1)
    assert (mdlm[x_t != c] == 0).all()
    losses = joint_decoder_losses(logits, x0, x_t.unsqueeze(-1), t, codec, sched)
    assert torch.allclose(losses.published, mdlm, rtol=1e-6)
    assert torch.allclose(losses.valid_bound, mdlm, rtol=1e-6)


def test_carry_over_reproduces_every_revealed_digit():
    g = torch.Generator().manual_seed(2)
    codec = SubTokenizer(100, 3)  # b = 5, 25 invalid codes
    x0 = torch.randint(0, 100, (6, 10), generator=g)
    y_t = mask_subtokens(codec.encode(x0), 0.5, codec.mask_id, generator=g)
    log_probs = joint_log_probs(torch.randn(6, 10, 100, generator=g), y_t, codec)
    marginals = subtoken_log_marginals(log_probs, codec).exp()
    revealed = y_t != codec.mask_id
    on_revealed = marginals.gather(-1, y_t.clamp(max=codec.base - 1)[..., None]).squeeze(-1)
    assert torch.allclose(on_revealed[revealed], torch.ones(()), atol=1e-6)
    assert torch.allclose(marginals.sum(-1), torch.ones(()), atol=1e-6)


def test_marginals_match_a_direct_sum():
    g = torch.Generator().manual_seed(3)
    codec = SubTokenizer(23, 2)  # b = 5
    log_probs = torch.log_softmax(torch.randn(4, 23, generator=g, dtype=torch.float64), -1)
    marginals = subtoken_log_marginals(log_probs, codec).exp()
    for x in range(23):
        hi, lo = divmod(x, 5)
        assert codec.encode(torch.tensor(x)).tolist() == [hi, lo]
    for j in range(2):
        for v in range(5):
            members = [x for x in range(23) if (x // 5 if j == 0 else x % 5) == v]
            direct = log_probs[:, members].exp().sum(-1)
            assert torch.allclose(marginals[:, j, v], direct, rtol=1e-12)


def test_independent_decoder_carry_over_is_one_hot_on_revealed_digits():
    g = torch.Generator().manual_seed(4)
    codec = SubTokenizer(512, 2)
    y_t = torch.tensor([[[3, codec.mask_id], [codec.mask_id, codec.mask_id]]])
    lp = independent_log_probs(torch.randn(1, 2, 2, 23, generator=g), y_t, codec)
    assert lp[0, 0, 0, 3] == 0 and torch.isneginf(lp[0, 0, 0, :3]).all()
    assert torch.allclose(lp[0, 1].exp().sum(-1), torch.ones(2))
    no_co = independent_log_probs(torch.randn(1, 2, 2, 23), y_t, codec, carry_over=False)
    assert torch.isfinite(no_co).all()


def _monte_carlo(model_logits, data: ExactPosterior, x0, *, seed, carry_over=True):
    """Per-sequence (published, valid) losses summed over the L tokens, one t each."""
    g = torch.Generator().manual_seed(seed)
    codec, schedule = data.codec, get_schedule("linear")
    t = sample_times(x0.shape[0], eps=1e-4, generator=g, dtype=torch.float64)
    y_t = mask_subtokens(codec.encode(x0), schedule.alpha(t), codec.mask_id, generator=g)
    pub, val = [], []
    for rows in torch.split(torch.arange(x0.shape[0]), 4000):
        losses = joint_decoder_losses(
            model_logits(y_t[rows]),
            x0[rows],
            y_t[rows],
            t[rows],
            codec,
            schedule,
            carry_over=carry_over,
        )
        pub.append(losses.published.sum(-1))
        val.append(losses.valid_bound.sum(-1))
    return torch.cat(pub), torch.cat(val)


def _random_pmf(n: int, g: torch.Generator) -> torch.Tensor:
    """A Dirichlet(1, ..., 1) draw: normalised Exp(1) variables."""
    e = torch.empty(n, dtype=torch.float64).exponential_(generator=g)
    return e / e.sum()


def _z(values: torch.Tensor, target: float = 0.0) -> float:
    se = float(values.std()) / math.sqrt(values.numel())
    return (float(values.mean()) - target) / se


@pytest.mark.parametrize(("num_classes", "ell"), [(9, 2), (27, 3), (20, 2), (6, 1)])
def test_valid_bound_equals_exact_nll_for_the_exact_posterior(num_classes, ell):
    # L = 2 tokens with a random joint pmf; the model is the exact posterior. The
    # continuous-time NELBO with exact conditionals equals -log p(x0) for every x0 (it
    # averages chain-rule factorizations over random orders), so the per-sample
    # difference loss + log p(x0) has mean 0.
    g = torch.Generator().manual_seed(num_classes + ell)
    codec = SubTokenizer(num_classes, ell)
    probs = _random_pmf(num_classes**2, g)
    data = ExactPosterior(probs, codec, seq_len=2)
    x0 = data.sample(40000, g)
    log_p = data.log_prob(x0)
    _, valid = _monte_carlo(data.logits, data, x0, seed=7)
    assert abs(_z(valid + log_p)) < 4
    assert abs(_z(valid, entropy(data.probs))) < 4

    # An imperfect model: the exact posterior of another pmf q. Its bound is -log q(x0)
    # per sample, so on data from p it averages the cross-entropy H(p, q) > H(p).
    q = _random_pmf(num_classes**2, g)
    other = ExactPosterior(q, codec, seq_len=2)
    _, valid_q = _monte_carlo(other.logits, data, x0, seed=8)
    assert abs(_z(valid_q + other.log_prob(x0))) < 4
    cross_entropy = float(-(data.probs * q.log()).sum())
    assert abs(_z(valid_q, cross_entropy)) < 4
    assert _z(valid_q + log_p) > 4  # above the exact NLL, by KL(p || q) on average

    # A model that is no exact posterior of anything: noisy logits. Still above H(p).
    def noisy(y_t):
        exact = data.logits(y_t)
        return exact + torch.randn(exact.shape, generator=g, dtype=exact.dtype)

    _, valid_noisy = _monte_carlo(noisy, data, x0, seed=9)
    assert _z(valid_noisy + log_p) > 4


def test_duplicated_digits_published_estimator_is_half_the_entropy():
    # Each token's two base-b digits are one uniform value v repeated: x = v*b + v.
    # Entropy log b per token; with a perfect model the published joint loss gives
    # 0.5 log b (not a bound), the valid marginal bound gives log b (tight).
    b = 5
    codec = SubTokenizer(b * b, 2)
    assert codec.base == b
    token_p = torch.zeros(b * b, dtype=torch.float64)
    token_p[[v * b + v for v in range(b)]] = 1.0 / b
    data = ExactPosterior(torch.outer(token_p, token_p).flatten(), codec, seq_len=2)
    g = torch.Generator().manual_seed(0)
    x0 = data.sample(40000, g)
    published, valid = _monte_carlo(data.logits, data, x0, seed=1)
    per_token = math.log(b)
    assert abs(entropy(data.probs) - 2 * per_token) < 1e-12
    assert abs(_z(published / 2, 0.5 * per_token)) < 4
    assert abs(_z(valid / 2, per_token)) < 4
    assert _z(published / 2, per_token) < -20  # the published number is below the entropy


def test_published_loss_without_carry_over_charges_unmasked_tokens():
    g = torch.Generator().manual_seed(5)
    codec = SubTokenizer(30, 2)
    x0 = torch.randint(0, 30, (3, 4), generator=g)
    y_t = codec.encode(x0)  # nothing masked
    t = torch.full((3,), 0.5)
    logits = torch.randn(3, 4, 30, generator=g)
    with_co = joint_decoder_losses(logits, x0, y_t, t, codec, get_schedule("linear"))
    without = joint_decoder_losses(
        logits, x0, y_t, t, codec, get_schedule("linear"), carry_over=False
    )
    assert (with_co.published == 0).all() and (with_co.valid_bound == 0).all()
    assert (without.published > 0).all()  # the model must learn to copy
    assert (without.valid_bound == 0).all()  # revealed digits are not scored


def test_valid_bound_gradients_are_finite_with_unreachable_digit_values():
    # C = 5, ell = 2 (b = 3): codes 5..8 are invalid, so under carry-over some digit values
    # have no allowed token (marginal 0). Training on the valid bound must still get
    # finite gradients (log(0) must not send 0 * inf = nan backwards).
    codec = SubTokenizer(5, 2)
    logits = torch.randn(4, 3, 5, requires_grad=True)
    x0 = torch.randint(0, 5, (4, 3))
    y_t = codec.encode(x0)
    y_t[:, 0, 1] = codec.mask_id  # first digit revealed, second masked
    t = torch.full((4,), 0.5)
    losses = joint_decoder_losses(logits, x0, y_t, t, codec, get_schedule("linear"))
    losses.valid_bound.sum().backward()
    assert torch.isfinite(logits.grad).all()
