"""Block diffusion (BD3-LM and its sub-token form): masks, reductions, exact likelihoods."""

import math

import pytest
import torch

from baselines import BlockDiffusion, context_mask, dense_training_mask, training_mask
from prime import (
    BatchShard,
    MaskedDiffusion,
    SamplerConfig,
    SubTokenizer,
    expected_idle_steps,
    get_schedule,
    mask_subtokens,
)
from prime.backbones import DiT, DiTConfig
from tests.helpers import ExactPosterior

TINY = DiTConfig(hidden=32, depth=2, heads=2, cond_dim=16, dropout=0.0)


def _network(codec: SubTokenizer, seed: int = 0) -> DiT:
    torch.manual_seed(seed)
    net = DiT(TINY, codec.base, codec.ell, codec.num_classes).double()
    # The head starts at zero (adaLN-zero); random weights make every test non-trivial.
    torch.nn.init.normal_(net.head.weight, std=0.5)
    for block in net.blocks:
        torch.nn.init.normal_(block.modulation.weight, std=0.1)
    return net.eval()


def _brute_force_mask(seq_len: int, block: int) -> torch.Tensor:
    n = 2 * seq_len
    out = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(n):
            qn, kn = q < seq_len, k < seq_len
            qb, kb = (q % seq_len) // block, (k % seq_len) // block
            same_half_same_block = qn == kn and qb == kb
            noised_sees_earlier_clean = qn and not kn and kb < qb
            clean_block_causal = not qn and not kn and kb <= qb
            out[q, k] = same_half_same_block or noised_sees_earlier_clean or clean_block_causal
    return out


@pytest.mark.parametrize(("seq_len", "block"), [(8, 2), (8, 4), (8, 8), (8, 1), (10, 4), (7, 3)])
def test_training_mask_equals_the_three_rules(seq_len, block):
    # (10, 4) and (7, 3): L' does not divide L, the last block is the shorter remainder.
    dense = dense_training_mask(seq_len, block)
    assert torch.equal(dense, _brute_force_mask(seq_len, block))
    # x_0 never sees x_t, so the split form computes the same attention in 3 L^2 scores.
    assert not dense[seq_len:, :seq_len].any()
    split = training_mask(seq_len, block, backend="sdpa")
    q, k, v = torch.randn(3, 2, 2, 2 * seq_len, 8, dtype=torch.float64).unbind(0)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense)
    assert torch.allclose(split.attend(q, k, v), reference, atol=1e-12)


def test_context_mask_is_block_causal_within_the_window():
    mask = context_mask(torch.arange(8), 2, context_blocks=1)
    for q in range(8):
        for k in range(8):
            assert bool(mask[q, k]) == (q // 2 - 1 <= k // 2 <= q // 2)


@pytest.mark.parametrize("ell", [1, 2])
def test_one_block_is_mdlm(ell):
    # L' = L: the block-diffusion loss is the MDLM / MDLM-Prime loss of the same network on
    # the same (t, mask) draw (the clean half is invisible to the noised one).
    codec = SubTokenizer(40, ell)
    net = _network(codec)
    seq_len = 12
    block = BlockDiffusion(net, codec, seq_len, "loglinear").double()
    plain = MaskedDiffusion(net, codec, "loglinear").double()
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 40, (5, seq_len), generator=g)
    t, y_t = block.corrupt(x0, g)
    assert t.shape == (5, 1)
    ours, mdlm = block.losses(x0, t, y_t), plain.losses(x0, t[:, 0], y_t)
    assert torch.allclose(ours.valid_bound, mdlm.valid_bound, rtol=1e-10, atol=1e-10)
    assert torch.allclose(ours.published, mdlm.published, rtol=1e-10, atol=1e-10)


def test_unit_blocks_at_full_noise_are_next_token_prediction():
    # L' = 1, t = 1: every token is masked and sees the clean tokens before it. The loss
    # is -log p(x_i | x_<i) of the same network run on (x_<i, mask) with causal attention.
    codec = SubTokenizer(30, 1)
    net = _network(codec, seed=1)
    model = BlockDiffusion(net, codec, 1, "linear").double()
    x0 = torch.randint(0, 30, (3, 9), generator=torch.Generator().manual_seed(0))
    t = torch.ones(3, 9, dtype=torch.float64)
    y_t = torch.full((3, 9, 1), codec.mask_id)
    per_token = model.losses(x0, t, y_t).valid_bound  # w(1) = 1 for the linear schedule
    for i in range(9):
        y = torch.cat([x0[:, :i].unsqueeze(-1), torch.full((3, 1, 1), codec.mask_id)], dim=1)
        causal = torch.ones(i + 1, i + 1, dtype=torch.bool).tril()
        logits = net(y, None, mask=causal)[:, i]
        nll = -torch.log_softmax(logits, -1).gather(-1, x0[:, i : i + 1]).squeeze(-1)
        assert torch.allclose(per_token[:, i], nll, rtol=1e-10, atol=1e-10)


class _ExactBlockNetwork(torch.nn.Module):
    """The exact block posterior p(x^b_i | y_t^b, x^{<b}) of an enumerable distribution,
    behind the 2L-position interface (it reads the clean earlier blocks from the x_0 half)."""

    time_conditioned = False

    def __init__(self, data: ExactPosterior, block: int):
        super().__init__()
        self.data, self.block = data, block

    def forward(self, y, t=None, *, positions=None, mask=None, cache=None, outputs=None):
        seq_len = self.data.seq_len
        noised, clean = y[:, :seq_len], y[:, seq_len:]
        out = torch.empty(y.shape[0], seq_len, self.data.codec.num_classes, dtype=torch.float64)
        for start in range(0, seq_len, self.block):
            end = min(start + self.block, seq_len)
            cond = torch.full_like(noised, self.data.codec.mask_id)
            cond[:, :start], cond[:, start:end] = clean[:, :start], noised[:, start:end]
            out[:, start:end] = self.data.logits(cond)[:, start:end]
        return out[:, :outputs]  # the clean half never enters the loss


def _z(values: torch.Tensor, target: float = 0.0) -> float:
    return (float(values.mean()) - target) / (float(values.std()) / math.sqrt(values.numel()))


@pytest.mark.parametrize(
    ("num_classes", "ell", "seq_len", "block"), [(5, 2, 4, 2), (6, 1, 4, 2), (4, 2, 3, 2)]
)
def test_block_nelbo_is_the_exact_nll_for_the_exact_model(num_classes, ell, seq_len, block):
    g = torch.Generator().manual_seed(num_classes * 10 + seq_len)
    codec = SubTokenizer(num_classes, ell)
    n_states = num_classes**seq_len

    def pmf():
        e = torch.empty(n_states, dtype=torch.float64).exponential_(generator=g)
        return e / e.sum()

    data = ExactPosterior(pmf(), codec, seq_len)
    x0 = data.sample(20000, g)
    log_p = data.log_prob(x0)

    def bound(model_data):
        model = BlockDiffusion(
            _ExactBlockNetwork(model_data, block), codec, block, "linear", time_eps=1e-4
        )
        t, y_t = model.corrupt(x0, torch.Generator().manual_seed(7))
        return model.losses(x0, t, y_t, which=("valid_bound",)).valid_bound.sum(-1)

    exact = bound(data)
    assert abs(_z(exact + log_p)) < 4  # equal in expectation, sample by sample
    other = ExactPosterior(pmf(), codec, seq_len)
    wrong = bound(other)
    assert abs(_z(wrong + other.log_prob(x0))) < 4  # the bound of q's model is -log q(x0)
    assert _z(wrong + log_p) > 4  # above the exact NLL, by KL(p || q)


def test_times_are_one_per_block_in_the_window_and_independent_of_the_split():
    codec = SubTokenizer(20, 2)
    model = BlockDiffusion(_network(codec), codec, 3, window=(0.3, 0.8))
    x0 = torch.randint(0, 20, (8, 10))
    t, y_t = model.corrupt(x0, torch.Generator().manual_seed(0))
    assert t.shape == (8, 4) and bool(((t >= 0.3) & (t < 0.8)).all())
    # Stratified over batch x blocks: one time in each of the 32 strata of the window.
    strata = ((t - 0.3) / 0.5 * 32).floor().long().flatten().sort().values
    assert torch.equal(strata, torch.arange(32))
    shard_t, shard_y = model.corrupt(
        x0[2:5], torch.Generator().manual_seed(0), shard=BatchShard(2, 3, 8)
    )
    assert torch.equal(shard_t, t[2:5]) and torch.equal(shard_y, y_t[2:5])


def test_window_search_picks_the_least_variance_window_and_checkpoints_it():
    codec = SubTokenizer(20, 1)
    model = BlockDiffusion(_network(codec), codec, 4)
    x0 = torch.randint(0, 20, (16, 12), generator=torch.Generator().manual_seed(1))
    windows = [(0.0, 1.0), (0.3, 0.8), (0.45, 0.5)]
    variances = model.window_variances(x0, windows, seed=3)
    chosen = model.search_window(x0, windows, seed=3)
    assert chosen == pytest.approx(windows[int(variances.argmin())])
    assert model.state_dict()["window"].tolist() == pytest.approx(list(chosen))
    # Common random numbers: the same call gives the same variances.
    assert torch.equal(variances, model.window_variances(x0, windows, seed=3))


@pytest.mark.parametrize(
    "sampler", [{}, {"first_hitting": True}, {"context_blocks": 1}, {"top_p": 0.9}]
)
@pytest.mark.parametrize("ell", [1, 2])
def test_cached_and_uncached_samplers_agree(sampler, ell):
    codec = SubTokenizer(25, ell)
    model = BlockDiffusion(_network(codec, seed=2), codec, 3).double()
    context = sampler.pop("context_blocks", None)
    config = SamplerConfig(steps=6, **sampler)
    runs = [
        model.sample(
            2,
            11,
            config,
            kv_cache=cached,
            context_blocks=context,
            generator=torch.Generator().manual_seed(9),
        )
        for cached in (True, False)
    ]
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert runs[0].nfe == runs[1].nfe and torch.equal(runs[0].idle_steps, runs[1].idle_steps)
    if sampler.get("first_hitting"):
        assert runs[0].nfe == 11 * ell and int(runs[0].idle_steps.sum()) == 0


class _ExactContextNetwork(torch.nn.Module):
    """The exact posterior behind the sampler's uncached interface: (clean, noised block)."""

    time_conditioned = False

    def __init__(self, data: ExactPosterior):
        super().__init__()
        self.data = data

    def forward(self, y, t=None, *, positions=None, mask=None, cache=None):
        cond = torch.full((y.shape[0], self.data.seq_len, y.shape[2]), self.data.codec.mask_id)
        cond[:, : y.shape[1]] = y
        return self.data.logits(cond)[:, : y.shape[1]]


@pytest.mark.parametrize("first_hitting", [False, True])
def test_block_sampler_with_the_exact_model_draws_from_the_data(first_hitting):
    codec = SubTokenizer(4, 2)
    g = torch.Generator().manual_seed(0)
    probs = torch.empty(4**3, dtype=torch.float64).exponential_(generator=g)
    data = ExactPosterior(probs, codec, seq_len=3)
    model = BlockDiffusion(_ExactContextNetwork(data), codec, 2, "linear")
    # The grid sampler is exact only as steps reveal one sub-token at a time: many steps.
    out = model.sample(
        20000, 3, SamplerConfig(steps=64, first_hitting=first_hitting), kv_cache=False, generator=g
    )
    index = (out.tokens * torch.tensor([16, 4, 1])).sum(-1)
    empirical = torch.bincount(index, minlength=64).double() / 20000
    assert 0.5 * float((empirical - data.probs).abs().sum()) < 0.05  # sampling noise ~0.03


class _Blank(torch.nn.Module):
    """Zero logits: the reveal process alone decides idle steps."""

    time_conditioned = False

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, y, t=None, *, positions=None, mask=None, cache=None):
        return torch.zeros(*y.shape[:2], self.num_classes)


@pytest.mark.parametrize("ell", [1, 2])
def test_idle_steps_per_block_follow_the_closed_form_with_the_block_length(ell):
    codec = SubTokenizer(16, ell)
    model = BlockDiffusion(_Blank(16), codec, 4, "linear")
    steps, blocks = 8, 3
    out = model.sample(
        4000,
        4 * blocks,
        SamplerConfig(steps=steps),
        kv_cache=False,
        generator=torch.Generator().manual_seed(1),
    )
    expected = blocks * expected_idle_steps(steps, 4, ell, "linear", eps=1e-5)
    assert out.num_steps == steps * blocks
    assert abs(_z(out.idle_steps.double(), expected)) < 4


def test_block_diffusion_rejects_a_time_conditioned_network():
    codec = SubTokenizer(20, 1)
    net = DiT(TINY, codec.base, 1, 20, time_conditioned=True)
    with pytest.raises(ValueError, match="time_conditioned"):
        BlockDiffusion(net, codec, 4)


def test_masking_with_block_times_masks_each_block_at_its_rate():
    y0 = torch.zeros(3000, 4, 1, dtype=torch.long)
    alpha = get_schedule("linear").alpha(torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(3000, 4))
    y_t = mask_subtokens(y0, alpha, mask_id=9, generator=torch.Generator().manual_seed(0))
    assert bool((y_t[:, :2] == 0).all()) and bool((y_t[:, 2:] == 9).all())
