"""The ell = 1 head with a mask class (objective cross_entropy_257, prime.mask_class).

The authors' image MDM (image/models/model_configs.py:60-63, utils/train_loop.py:80-84)
has C + 1 = 257 logits per token and trains the unweighted cross-entropy over every
token, revealed ones included. Checked here: that loss against a hand computation, the
sampler never proposing the mask class, and the valid bound against exact likelihoods
of an enumerable distribution (two pixels of two values).
"""

import math
from dataclasses import replace

import pytest
import torch

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import parse_overrides
from benchmarks.config.recipe import card
from benchmarks.core import ConfigError
from benchmarks.registry import MODELS, TASKS
from prime import MaskedDiffusion, SamplerConfig, SubTokenizer
from tests.helpers import ExactPosterior, entropy

C = 4  # clean values; the mask class is C
C_TWO = 2  # two pixel values: the enumerable distribution's


class _Table(torch.nn.Module):
    """Logits looked up from the token's noised value: (C + 1) rows of C + 1 logits, so
    that masked and revealed tokens get different predictions."""

    time_conditioned = False

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.table[y_t[..., 0]]


def _model(network: torch.nn.Module, classes: int = C) -> MaskedDiffusion:
    codec = SubTokenizer(classes, 1)
    return MaskedDiffusion(network, codec, "polynomial", objective="cross_entropy_257")


def test_training_loss_is_the_mean_257_way_cross_entropy_over_every_token():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(C + 1, C + 1, generator=g, dtype=torch.float64)
    model = _model(_Table(table))
    x0 = torch.randint(0, C, (3, 5), generator=g)
    loss, parts = model.training_loss(x0, torch.Generator().manual_seed(1))
    _, y_t = model.corrupt(x0, torch.Generator().manual_seed(1))  # the same draws
    assert (y_t == C).any() and (y_t != C).any()  # both kinds of token are scored
    # By hand: -log softmax over all C + 1 logits at the target, averaged over all tokens.
    total = 0.0
    for b in range(3):
        for i in range(5):
            row = table[y_t[b, i, 0]].tolist()
            total += math.log(sum(math.exp(v) for v in row)) - row[x0[b, i]]
    assert loss.item() == pytest.approx(total / 15, rel=1e-12)
    assert list(parts) == ["cross_entropy_257"]
    # The gradient on the mask-class logit is its probability at every token it is used:
    # the network is charged for any mass on the mask class.
    loss.backward()
    q = torch.softmax(table, -1)
    uses = torch.bincount(y_t.flatten(), minlength=C + 1).double()
    assert torch.allclose(model.network.table.grad[:, C], q[:, C] * uses / 15, rtol=1e-12)


def test_sampler_never_proposes_the_mask_class_and_renormalises():
    g = torch.Generator().manual_seed(2)
    table = torch.randn(C + 1, C + 1, generator=g, dtype=torch.float64)
    table[:, C] = 30.0  # nearly all mass on the mask class
    model = _model(_Table(table))
    y = torch.tensor([[[C], [1]]])
    logits = model(y, torch.full((1,), 0.5))
    assert logits.shape == (1, 2, C)
    tau = 0.8  # the clean-class distribution at any temperature: renormalised
    q = torch.softmax(table[[C, 1]] / tau, -1)
    assert torch.allclose(torch.softmax(logits[0] / tau, -1), q[:, :C] / q[:, :C].sum(-1, True))
    for proposal in ("token", "subtoken"):
        config = SamplerConfig(
            steps=8,
            proposal=proposal,
            carry_over=False,
            temperature=(-0.15, 1.0, 1.0),
            corrector=(12.0, 2.0, 0.75),
            time_warp=(1.0, 0.0, 0.0),
        )
        result = model.sample(200, 6, config, generator=torch.Generator().manual_seed(3))
        assert (result.subtokens < C).all() and (result.tokens < C).all()


def _exact_nelbo(model: MaskedDiffusion, x0: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both estimators' NELBO of each two-token x0 (N, 2), exactly: the network ignores t,
    so the integrand at mask pattern m is w(t) CE(m), and for k of L masked tokens
    int_0^1 w(t) (1 - alpha)^k alpha^(L - k) dt = (k - 1)! (L - k)! / L!, which is 1/2
    for L = 2, k = 1 or 2 (the pattern with no mask scores 0 in either estimator)."""
    t = torch.full((x0.shape[0],), 0.37, dtype=torch.float64)
    w = model.schedule.weight(t)
    out = {"published": 0.0, "valid_bound": 0.0}
    for masked in ([0], [1], [0, 1]):
        y_t = x0.clone().unsqueeze(-1)
        y_t[:, masked] = model.codec.mask_id
        losses = model.losses(x0, t, y_t)
        for name in out:
            out[name] = out[name] + 0.5 * getattr(losses, name).sum(-1) / w
    return out


def _head(posterior, mask_logit: float):
    """The (C + 1)-way head of a posterior's logits: the mask class logit appended."""

    def network(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = posterior(y_t)
        return torch.cat([logits, torch.full_like(logits[..., :1], mask_logit)], -1)

    return network


class _Net(torch.nn.Module):
    time_conditioned = False

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, y_t, t):
        return self.fn(y_t, t)


def test_valid_bound_is_exact_for_the_posterior_and_above_the_entropy_otherwise():
    g = torch.Generator().manual_seed(4)
    codec = SubTokenizer(C_TWO, 1)
    pmf = torch.tensor([0.5, 0.1, 0.15, 0.25], dtype=torch.float64)
    data = ExactPosterior(pmf, codec, seq_len=2)
    x0 = data.states  # all four sequences
    log_p = data.log_prob(x0)
    for mask_logit in (-math.inf, 0.7):
        model = _model(_Net(_head(data.logits, mask_logit)), C_TWO)
        nelbo = _exact_nelbo(model, x0)
        # valid: SUBS on the head, the mask class dropped: -log p(x0) for every x0.
        assert torch.allclose(nelbo["valid_bound"], -log_p, rtol=1e-12)
        # published charges the mask class's mass at masked tokens: above valid unless 0.
        if mask_logit == -math.inf:
            assert torch.allclose(nelbo["published"], -log_p, rtol=1e-12)
        else:
            assert (nelbo["published"] > nelbo["valid_bound"] + 1e-3).all()

    other = ExactPosterior(torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64), codec, 2)
    noise = torch.randn(9, 2, 3, generator=g, dtype=torch.float64)  # fixed per noised state

    def noisy(y_t, t):
        return _head(data.logits, 0.0)(y_t, t) + noise[3 * y_t[:, 0, 0] + y_t[:, 1, 0]]

    for network in (_head(other.logits, 0.0), noisy):
        nelbo = _exact_nelbo(_model(_Net(network), C_TWO), x0)
        expected = float((pmf * nelbo["valid_bound"]).sum())
        assert expected > entropy(pmf) + 1e-3  # E_p[valid bound] >= H(p), strictly here
        assert (nelbo["published"] >= nelbo["valid_bound"] - 1e-12).all()
    # The other posterior's bound is its own exact NLL, -log q(x0).
    nelbo = _exact_nelbo(_model(_Net(_head(other.logits, 0.0)), C_TWO), x0)
    assert torch.allclose(nelbo["valid_bound"], -other.log_prob(x0), rtol=1e-12)


@pytest.mark.parametrize("name", ["mdm", "mdm-mixture"])
def test_image_model_trains_scores_and_samples_with_the_257_way_head(name):
    # image-cpu's MDM (or the mixture) with the option, on toy 3 x 4 x 4 images.
    overrides = ["model.objective=cross_entropy_257", f"model.name={name}"]
    (config,) = load_experiment("image-cpu").resolve("cpu", parse_overrides(overrides), ["mdm"])
    task = TASKS.get(config.task.name)(config.task.params, config)
    spec = replace(task.data_spec(), seq_len=48, image_shape=(3, 4, 4))
    torch.manual_seed(0)
    model = MODELS.get(name).build(config.model.params, spec)
    unet = getattr(model.network, "network", model.network)  # inside the label mixture
    assert unet.out[-1].out_channels == 3 * 2 * 2 * 257  # 2 x 2 patches of RGB pixels
    x0 = torch.randint(0, 256, (2, spec.seq_len))
    loss, parts = model.training_loss(x0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and list(parts) == ["cross_entropy_257"]
    model.eval()
    nll = model.block_nll(x0, torch.tensor([0.3, 0.8]), torch.Generator().manual_seed(1))
    assert (nll["published"] >= nll["valid_bound"]).all() and (nll["valid_bound"] > 0).all()
    result = model.sample(2, spec.seq_len, task.sampler_config(3))
    assert (result.tokens < 256).all()


def test_paper_ell_one_rows_use_the_authors_head_and_cpu_rows_keep_theirs():
    for experiment, variants in (
        ("ell-sweep", ["cifar10-l1", "imagenet32-l1"]),
        ("table3", ["cifar10-mdm-mixture", "imagenet32-mdm-mixture"]),
    ):
        exp = load_experiment(experiment)
        for config in exp.resolve("paper", None, variants):
            assert config.model.params.objective == "cross_entropy_257"
            entry = card(exp, config)["model.objective"]
            assert (entry.kind, entry.value) == ("source", "cross_entropy_257")
    (cpu,) = load_experiment("image-cpu").resolve("cpu", None, ["mdm"])
    assert cpu.model.params.objective == "cross_entropy"
    clean_only = parse_overrides(
        ["model.objective=cross_entropy_257", "model.masking=at_least_one"]
    )
    with pytest.raises(ConfigError, match="model.masking"):  # the loss charges clean tokens
        load_experiment("image-cpu").resolve("cpu", clean_only, ["mdm"])
    with pytest.raises(ValueError, match="needs ell = 1"):
        MaskedDiffusion(_Net(None), SubTokenizer(16, 2), objective="cross_entropy_257")
