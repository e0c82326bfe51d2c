"""SuiteJudge: the suite's AR model as judge, checked against the model's own exact NLL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines import ARMConfig, ARMTransformer, AutoregressiveLM
from benchmarks.data.tokenizers import get_tokenizer
from benchmarks.metrics.gen_ppl import generative_perplexity
from benchmarks.metrics.judge import Judge
from benchmarks.metrics.suite_judge import SuiteJudge
from prime.backbones import DiT, DiTConfig


def _randomise(net: torch.nn.Module) -> torch.nn.Module:
    """Fill the zero-initialised layers (heads, adaLN) so every layer shapes the output."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "modulation" in name or name.startswith("head"):
                p.normal_(0.0, 0.5)
    return net


def _model(kind: str, classes: int = 256) -> AutoregressiveLM:
    torch.manual_seed(0)
    if kind == "arm":
        net = ARMTransformer(ARMConfig(hidden=32, depth=2, heads=2, dropout=0.0), classes)
    else:
        cfg = DiTConfig(hidden=32, depth=2, heads=2, cond_dim=16, dropout=0.0)
        net = DiT(cfg, base=classes, ell=1, out_dim=classes, causal=True)
    return AutoregressiveLM(_randomise(net), classes, bos_id=0)


def _judge(kind: str, context_size: int = 64) -> SuiteJudge:
    return SuiteJudge(
        _model(kind), get_tokenizer("bytes"), context_size=context_size, label="random-init"
    )


@pytest.mark.parametrize("kind", ["arm", "dit"])
def test_token_nll_is_the_models_exact_nll(kind):
    judge = _judge(kind)
    assert isinstance(judge, Judge)
    ids = torch.randint(1, 256, (3, 12), generator=torch.Generator().manual_seed(1))
    nll = judge.token_nll(ids, torch.ones_like(ids))
    assert nll.shape == (3, 11)
    exact = judge.model.block_nll(ids)["exact"]
    torch.testing.assert_close(nll.double().sum(-1), exact, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["arm", "dit"])
def test_gen_ppl_of_equal_length_texts_is_the_exact_per_token_perplexity(kind):
    judge = _judge(kind)
    texts = ["hello world!", "a tiny judge", "sample three"]  # 12 bytes each, no NUL
    ids = torch.tensor([list(t.encode()) for t in texts])
    exact = judge.model.block_nll(ids)["exact"].sum().item()
    result = generative_perplexity(texts, judge, max_length=32, batch_size=2, drop_remainder=False)
    assert result.tokens == 3 * 11
    assert result.value == pytest.approx(math.exp(exact / (3 * 11)), rel=1e-6)
    assert "random-init" in result.card()["judge"]


def test_right_padding_does_not_change_the_scores_of_real_tokens():
    judge = _judge("arm")
    short, long = [5, 9, 13, 2], [7, 7, 1, 200, 3, 4, 8]
    alone = judge.token_nll(torch.tensor([short]), torch.ones(1, 4, dtype=torch.long))
    padded = torch.tensor([short + [0, 0, 0], long])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    torch.testing.assert_close(judge.token_nll(padded, mask)[:1, :3], alone)
    with pytest.raises(ValueError, match="right-padded"):
        judge.token_nll(padded, mask.flip(-1))


def test_features_are_the_heads_input_at_the_last_token():
    judge = _judge("arm")
    texts = ["abc", "a longer text"]
    feats = judge.features(texts)
    assert feats.shape == (2, 32)
    net = judge.model.network
    c = net.num_classes
    for text, f in zip(texts, torch.from_numpy(feats), strict=True):
        ids = torch.tensor([list(text.encode())]).unsqueeze(-1)
        logits = net(ids)[0, -1]
        torch.testing.assert_close(F.linear(f, net.head.weight[:c], net.head.bias[:c]), logits)


def test_features_do_not_depend_on_the_batch():
    judge = _judge("dit")
    together = judge.features(["abc", "a longer text", "z"])
    alone = [judge.features([t])[0] for t in ["abc", "a longer text", "z"]]
    for row, ref in zip(together, alone, strict=True):
        torch.testing.assert_close(torch.from_numpy(row), torch.from_numpy(ref))


def test_gpt2_eos_text_becomes_the_eos_id():
    tokenizer = get_tokenizer("gpt2")
    torch.manual_seed(0)
    model = AutoregressiveLM(
        ARMTransformer(ARMConfig(hidden=8, depth=1, heads=2, dropout=0.0), 50257), 50257
    )
    judge = SuiteJudge(model, tokenizer, context_size=16, label="t")
    text = "Hello<|endoftext|> world<|endoftext|><|endoftext|>!"
    expected = tokenizer.encoding.encode(text, allowed_special="all")
    assert judge.encode([text]) == [expected]
    assert expected.count(50256) == 3
    assert judge.encode([text], 2) == [expected[:2]]


def test_bytes_rows_have_no_eos_but_the_padding():
    judge = _judge("arm")
    assert judge.encode(["a\x00b"]) == [[97, 98]]


def test_mismatched_tokenizer_is_named():
    with pytest.raises(ValueError, match="tokenizer 'gpt2'"):
        SuiteJudge(_model("arm"), get_tokenizer("gpt2"), context_size=16, label="t")
