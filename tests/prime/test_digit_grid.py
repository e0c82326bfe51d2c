"""The restricted softmax over the digit grid against the straightforward masked softmax.

The reference forms the (N, C) consistent mask, a masked ``log_softmax`` and every digit
marginal by an explicit logsumexp over the tokens with that digit value; the grid op
must agree in value and gradient for every ell (including b**ell > C, invalid codes),
all-masked and all-revealed tokens, float32 and float64. Draws are checked against the
exact restricted distribution by enumeration.
"""

import math

import pytest
import torch

from prime import SubTokenizer, grid_sample, grid_softmax, subtoken_log_marginals

CASES = [(23, 1), (23, 2), (23, 3), (100, 2), (64, 3), (50, 4), (30, 5), (200, 6), (300, 8)]


def reference(logits, y, codec, targets):
    """log Z, log p(x_0 | y), log-marginals (N, ell, b) the plain way, differentiable."""
    allowed = codec.consistent_mask(y)
    masked = logits.masked_fill(~allowed, float("-inf"))
    log_z = torch.logsumexp(masked, -1)
    probs = torch.softmax(masked, -1)
    token = torch.log_softmax(masked, -1).gather(-1, targets[:, None]).squeeze(-1)
    columns = []
    for j in range(codec.ell):
        onehot = torch.nn.functional.one_hot(codec.digits[:, j], codec.base).to(probs.dtype)
        mass = probs @ onehot
        reachable = mass > 0
        columns.append(torch.where(reachable, torch.where(reachable, mass, 1.0).log(), -math.inf))
    return log_z, token, torch.stack(columns, 1)


def noised(codec, n, generator, reveal=0.5):
    x0 = torch.randint(0, codec.num_classes, (n,), generator=generator)
    y0 = codec.encode(x0)
    keep = torch.rand(n, codec.ell, generator=generator) < reveal
    y = torch.where(keep, y0, codec.mask_id)
    y[0], y[1] = codec.mask_id, y0[1]  # one all-masked token, one all-revealed token
    # A target outside V(y), which holds another token: log-probability -inf.
    other = codec.encode((x0[2] + 1) % codec.num_classes)
    axis = int((other != y0[2]).nonzero()[0])
    y[2] = codec.mask_id
    y[2, axis] = other[axis]
    return x0, y


@pytest.mark.parametrize("chunk_rows", [5, None])  # at ell = 1 on a CPU None is a log-softmax
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("num_classes,ell", CASES)
def test_values_and_gradients_equal_the_masked_log_softmax(num_classes, ell, dtype, chunk_rows):
    g = torch.Generator().manual_seed(num_classes * 10 + ell)
    codec = SubTokenizer(num_classes, ell)
    n = 17
    x0, y = noised(codec, n, g)
    logits = (3 * torch.randn(n, num_classes, generator=g, dtype=dtype)).requires_grad_()
    out = grid_softmax(logits, y, codec, targets=x0, marginals=True, chunk_rows=chunk_rows)
    ref = reference(logits, y, codec, x0)
    tol = dict(atol=1e-11, rtol=0) if dtype == torch.float64 else dict(atol=2e-5, rtol=0)
    finite = torch.isfinite(ref[2])
    assert torch.equal(torch.isfinite(out.log_marginals), finite)
    torch.testing.assert_close(out.log_normalizer, ref[0], **tol)
    assert out.token_log_prob[2] == -math.inf
    torch.testing.assert_close(out.token_log_prob[3:], ref[1][3:], **tol)
    torch.testing.assert_close(out.log_marginals[finite], ref[2][finite], **tol)
    assert out.token_log_prob[1] == 0.0  # the only consistent token, exactly
    digits = ref[2].gather(-1, codec.encode(x0)[..., None]).squeeze(-1)
    reached = torch.isfinite(digits)
    assert torch.equal(torch.isfinite(out.digit_log_probs), reached)
    torch.testing.assert_close(out.digit_log_probs[reached], digits[reached], **tol)

    upstream = [torch.randn(n, generator=g, dtype=dtype) for _ in range(2)]
    upstream[1][2] = 0.0
    upstream.append(torch.randn(n, ell, codec.base, generator=g, dtype=dtype) * finite)
    upstream.append(torch.randn(n, ell, generator=g, dtype=dtype) * reached)

    def scalar(log_z, token, marg, digit):
        marg, digit = torch.where(finite, marg, 0.0), torch.where(reached, digit, 0.0)
        total = (log_z * upstream[0]).sum() + (token * upstream[1]).sum()
        return total + (marg * upstream[2]).sum() + (digit * upstream[3]).sum()

    (ours,) = torch.autograd.grad(scalar(*out), logits)
    (theirs,) = torch.autograd.grad(scalar(*ref, digits), logits)
    torch.testing.assert_close(ours, theirs, **tol)


def test_without_carry_over_is_the_plain_softmax_and_marginals_match_the_old_interface():
    g = torch.Generator().manual_seed(3)
    codec = SubTokenizer(100, 3)
    x0, y = noised(codec, 9, g)
    logits = torch.randn(9, 100, generator=g, dtype=torch.float64)
    out = grid_softmax(logits, y, codec, targets=x0, marginals=True, carry_over=False)
    log_probs = torch.log_softmax(logits, -1)
    torch.testing.assert_close(out.log_normalizer, torch.logsumexp(logits, -1))
    torch.testing.assert_close(out.token_log_prob, log_probs.gather(-1, x0[:, None])[:, 0])
    torch.testing.assert_close(out.log_marginals, subtoken_log_marginals(log_probs, codec))


def test_shapes_chunks_and_half_precision():
    g = torch.Generator().manual_seed(4)
    codec = SubTokenizer(50, 2)
    x0, y = noised(codec, 24, g)
    logits = torch.randn(24, 50, generator=g)
    whole = grid_softmax(logits, y, codec, targets=x0, marginals=True)
    for rows in (1, 7, 100):
        part = grid_softmax(logits, y, codec, targets=x0, marginals=True, chunk_rows=rows)
        torch.testing.assert_close(part.log_normalizer, whole.log_normalizer)
    batched = grid_softmax(logits.view(4, 6, 50), y.view(4, 6, 2), codec, targets=x0.view(4, 6))
    assert batched.log_normalizer.shape == (4, 6) and batched.log_marginals is None
    assert batched.digit_log_probs.shape == (4, 6, 2)
    half_logits = logits.bfloat16().requires_grad_()
    half = grid_softmax(half_logits, y, codec, targets=x0)
    assert half.log_normalizer.dtype == torch.bfloat16
    torch.testing.assert_close(half.log_normalizer.float(), whole.log_normalizer, atol=0.1, rtol=0)
    half.token_log_prob.sum().backward()  # sums in float32, the gradient in bfloat16
    full_logits = half_logits.detach().float().requires_grad_()
    grid_softmax(full_logits, y, codec, targets=x0).token_log_prob.sum().backward()
    assert half_logits.grad.dtype == torch.bfloat16
    torch.testing.assert_close(half_logits.grad.float(), full_logits.grad, atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="C=50"):
        grid_softmax(logits[:, :49], y, codec)
    with pytest.raises(ValueError, match="ell=2"):
        grid_softmax(logits, y[:, :1], codec)


def test_a_consistent_set_far_below_the_row_maximum_does_not_underflow():
    codec = SubTokenizer(64, 3)
    logits = torch.zeros(2, 64)
    logits[:, 0] = 500.0  # token 0 = (0, 0, 0) dominates, but is excluded below
    y = torch.tensor([[1, codec.mask_id, codec.mask_id], [3, 3, codec.mask_id]])
    x0 = torch.tensor([20, 61])
    logits.requires_grad_()
    out = grid_softmax(logits, y, codec, targets=x0, marginals=True)
    ref = reference(logits, y, codec, x0)
    torch.testing.assert_close(out.log_normalizer, ref[0])
    torch.testing.assert_close(out.token_log_prob, ref[1])
    out.token_log_prob.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[:, 0].abs().max() == 0


@pytest.mark.parametrize("num_classes,ell", [(23, 2), (30, 3), (9, 1)])
@pytest.mark.parametrize("subtoken", [False, True])
def test_draws_follow_the_restricted_distribution(num_classes, ell, subtoken):
    g = torch.Generator().manual_seed(5)
    codec = SubTokenizer(num_classes, ell)
    y = torch.full((1, ell), codec.mask_id)
    if ell > 1:
        y[0, -1] = 1  # reveal the last digit
    logits = torch.randn(1, num_classes, generator=g)
    n = 40_000
    draws = grid_sample(
        logits.expand(n, -1), y.expand(n, -1), codec, subtoken=subtoken, generator=g
    )
    ref = reference(logits, y, codec, torch.zeros(1, dtype=torch.long))
    if subtoken:
        for j in range(ell):
            freq = torch.bincount(draws[:, j], minlength=codec.base).double() / n
            assert (freq - ref[2][0, j].exp()).abs().sum() / 2 < 0.02
    else:
        tokens = codec.decode(draws)
        assert (tokens < num_classes).all() and (draws[:, -1] == y[0, -1]).all() or ell == 1
        freq = torch.bincount(tokens, minlength=num_classes).double() / n
        exact = torch.softmax(logits.masked_fill(~codec.consistent_mask(y), -math.inf), -1)[0]
        assert (freq - exact).abs().sum() / 2 < 0.02


def test_long_rows_are_drawn_by_block_and_entry_exactly():
    # ell = 1 over 5000 classes: rows longer than 4096 go block by block.
    g = torch.Generator().manual_seed(6)
    codec = SubTokenizer(5000, 1)
    logits = torch.full((1, 5000), -30.0)
    logits[0, :3] = torch.tensor([0.0, 1.0, 2.0])
    logits[0, 4999] = 1.5  # the last entry, in the padded last block
    y = torch.full((1, 1), codec.mask_id)
    n = 40_000
    draws = grid_sample(logits.expand(n, -1), y.expand(n, -1), codec, generator=g)[:, 0]
    exact = torch.softmax(logits[0].double(), -1)
    freq = torch.bincount(draws, minlength=5000).double() / n
    assert draws.max() < 5000 and (freq - exact).abs().sum() / 2 < 0.02


@pytest.mark.parametrize("chunk_rows", [7, None])
def test_one_digit_half_precision_sums_in_float32_both_ways(chunk_rows):
    g = torch.Generator().manual_seed(5)
    codec = SubTokenizer(40, 1)
    x0, y = noised(codec, 24, g)
    logits = torch.randn(24, 40, generator=g)
    half = logits.bfloat16().requires_grad_()
    out = grid_softmax(half, y, codec, targets=x0, marginals=True, chunk_rows=chunk_rows)
    assert out.token_log_prob.dtype == out.log_marginals.dtype == torch.bfloat16
    out.token_log_prob[3:].sum().backward()
    full = half.detach().float().requires_grad_()
    ref = reference(full, y, codec, x0)
    torch.testing.assert_close(out.log_normalizer.float(), ref[0], atol=0.1, rtol=0)
    ref[1][3:].sum().backward()
    assert half.grad.dtype == torch.bfloat16
    torch.testing.assert_close(half.grad.float(), full.grad, atol=1e-2, rtol=0)
