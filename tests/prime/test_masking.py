"""The at-least-one masking proposal: its draws, its weight, and that it trains the same
objective (the exact NLL for the exact posterior) with less variance."""

import itertools
import math

import pytest
import torch
from torch import nn

from benchmarks.core import ConfigError
from benchmarks.models.mdm import MDMParams
from benchmarks.models.mdm_prime import PrimeParams
from prime import BatchShard, MaskedDiffusion, SubTokenizer, mask_at_least_one
from tests.helpers import ExactPosterior, entropy


def test_every_sequence_gets_a_mask_and_the_weight_is_the_likelihood_ratio():
    g = torch.Generator().manual_seed(0)
    n_rows, n = 60000, 4
    y0 = torch.randint(0, 5, (n_rows, 2, 2), generator=g)
    alpha = torch.tensor([0.9, 0.5, 0.1]).repeat(n_rows // 3)
    y_t, weight = mask_at_least_one(y0, alpha, mask_id=5, generator=g)
    masked = (y_t == 5).flatten(1)
    assert torch.equal(y_t[y_t != 5], y0[y_t != 5])  # nothing but masking happens
    k = masked.sum(-1)
    assert bool((k >= 1).all())
    assert torch.allclose(weight, n * (1 - alpha.double()) / k.double())
    # A position is masked for sure with probability 1/N, else with probability a.
    for a in (0.1, 0.5, 0.9):
        rows = (1 - alpha - a).abs() < 1e-6
        rate = masked[rows].double().mean(0)
        expected = 1 / n + (1 - 1 / n) * a
        se = math.sqrt(expected * (1 - expected) / int(rows.sum()))
        assert ((rate - expected).abs() < 4 * se).all()


def test_the_weighted_proposal_has_the_expectation_of_independent_masking():
    # f(M): any function that is 0 on the empty mask. E_q[f] by enumerating the 2^N masks
    # of independent masking, against the Monte Carlo mean of (q / r) f under r.
    g = torch.Generator().manual_seed(1)
    n, a = 4, 0.3
    c = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)

    def f(masked: torch.Tensor) -> torch.Tensor:
        pair = masked[..., 0] & masked[..., 3]
        return (masked.double() * c).sum(-1) * (1 + pair.double())

    exact = 0.0
    for bits in itertools.product([False, True], repeat=n):
        m = torch.tensor(bits)
        k = int(m.sum())
        exact += a**k * (1 - a) ** (n - k) * float(f(m))
    rows = 400000
    y_t, weight = mask_at_least_one(
        torch.zeros(rows, n, dtype=torch.long), torch.full((rows,), 1 - a), 1, generator=g
    )
    values = weight * f(y_t == 1)
    se = float(values.std()) / math.sqrt(rows)
    assert abs(float(values.mean()) - exact) < 4 * se


def test_a_shard_draws_the_rows_of_the_global_batch():
    y0 = torch.arange(8 * 6).view(8, 3, 2)
    alpha = torch.linspace(0.1, 0.9, 8, dtype=torch.float64)
    whole = mask_at_least_one(y0, alpha, 99, generator=torch.Generator().manual_seed(3))
    part = mask_at_least_one(
        y0[2:5],
        alpha[2:5],
        99,
        generator=torch.Generator().manual_seed(3),
        shard=BatchShard(2, 3, 8),
    )
    assert torch.equal(part[0], whole[0][2:5]) and torch.equal(part[1], whole[1][2:5])


class _Exact(nn.Module):
    """The exact posterior of an enumerable distribution as a network."""

    def __init__(self, data: ExactPosterior):
        super().__init__()
        self.data = data

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.data.logits(y_t, t)


@pytest.mark.parametrize(("num_classes", "ell"), [(9, 2), (6, 1)])
def test_the_exact_posterior_trains_on_the_exact_nll_with_less_variance(num_classes, ell):
    # The valid bound of the exact posterior equals -log p(x0) in expectation over (t, y_t)
    # whichever way y_t is drawn; the at-least-one proposal gets there with less spread.
    g = torch.Generator().manual_seed(num_classes)
    codec = SubTokenizer(num_classes, ell)
    e = torch.empty(num_classes**2, dtype=torch.float64).exponential_(generator=g)
    data = ExactPosterior(e / e.sum(), codec, seq_len=2)
    x0 = data.sample(30000, g)
    log_p = data.log_prob(x0)
    per_sequence = {}
    for masking in ("independent", "at_least_one"):
        model = MaskedDiffusion(
            _Exact(data), codec, "linear", objective="valid", time_eps=1e-4, masking=masking
        )
        _, parts = model.training_loss(x0, torch.Generator().manual_seed(5))
        per_sequence[masking] = parts["valid"].double().sum(-1)
    for values in per_sequence.values():
        gap = values + log_p
        assert abs(float(gap.mean())) < 4 * float(gap.std()) / math.sqrt(len(gap))
        se = float(values.std()) / math.sqrt(len(values))
        assert abs(float(values.mean()) - entropy(data.probs)) < 4 * se
    ratio = per_sequence["at_least_one"].var() / per_sequence["independent"].var()
    assert ratio < 0.2  # 0.10 (ell = 2) and 0.04 (ell = 1) here


def test_masking_needs_a_loss_that_is_zero_on_a_clean_sequence():
    codec = SubTokenizer(10, 2)
    with pytest.raises(ValueError, match="at_least_one.*cross_entropy"):
        MaskedDiffusion(nn.Identity(), codec, objective="cross_entropy", masking="at_least_one")
    with pytest.raises(ValueError, match="carry_over False"):
        MaskedDiffusion(nn.Identity(), codec, carry_over=False, masking="at_least_one")
    with pytest.raises(ValueError, match="expected 'independent' or 'at_least_one'"):
        MaskedDiffusion(nn.Identity(), codec, masking="some")
    with pytest.raises(ConfigError, match="model.masking"):
        PrimeParams(objective="cross_entropy", masking="at_least_one")
    with pytest.raises(ConfigError, match="model.masking"):
        MDMParams(objective="cross_entropy", masking="at_least_one")
    PrimeParams(objective="published", carry_over=True, masking="at_least_one")


class _Linear(nn.Module):
    """A fixed function of (y_t, t): the one-hot sub-tokens through a random matrix."""

    def __init__(self, codec: SubTokenizer):
        super().__init__()
        self.width = codec.base + 1
        g = torch.Generator().manual_seed(0)
        self.weights = torch.randn(codec.ell * self.width, codec.num_classes, generator=g)

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(y_t, self.width).float().flatten(2)
        return onehot @ self.weights + t.view(-1, 1, 1)


def test_ranks_draw_the_rows_of_the_global_batch_alike():
    # Data parallelism: each rank's shard of the batch gets the noise its rows get in one
    # process, so the weighted per-token losses agree row for row.
    codec = SubTokenizer(50, 2)
    model = MaskedDiffusion(
        _Linear(codec), codec, "linear", objective="valid", masking="at_least_one"
    )
    x0 = torch.randint(0, 50, (6, 3), generator=torch.Generator().manual_seed(1))
    _, whole = model.training_loss(x0, torch.Generator().manual_seed(4))
    parts = [
        model.training_loss(x0[a:b], torch.Generator().manual_seed(4), BatchShard(a, b - a, 6))[1]
        for a, b in ((0, 2), (2, 6))
    ]
    assert torch.allclose(torch.cat([p["valid"] for p in parts]), whole["valid"])
