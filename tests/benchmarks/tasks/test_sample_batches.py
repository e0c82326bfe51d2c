"""The text task's samples in batches: one seed per batch, statistics pooled as the
authors' (NFE: the mean over the sampler calls of each call's network evaluations)."""

from __future__ import annotations

import pytest
import torch

from baselines import BlockDiffusion
from benchmarks.config.experiments import load_experiment
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError, EvalContext
from benchmarks.registry import MODELS, TASKS
from benchmarks.streams import eval_batch_seed
from benchmarks.tasks.text_params import TextLMParams
from benchmarks.tasks.text_samples import draw_text_samples
from prime import SamplerConfig, SubTokenizer
from tests.baselines.test_block_diffusion import _network

SEED = 60_001


class _Counted(torch.nn.Module):
    """Wraps a model's ``sample``: records each call's size and generator state."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.calls = model, []

    def sample(self, n, seq_len, config, *, generator):
        self.calls.append((n, generator.initial_seed()))
        return self.model.sample(n, seq_len, config, generator=generator)


def _model() -> BlockDiffusion:
    codec = SubTokenizer(25, 2)
    return BlockDiffusion(_network(codec, seed=2), codec, 3).double()


def test_four_samples_in_two_calls_each_from_its_batch_seed():
    config = SamplerConfig(steps=6)
    counted = _Counted(_model())
    drawn = draw_text_samples(counted, 4, 2, 7, config, SEED, torch.device("cpu"))
    assert [n for n, _ in counted.calls] == [2, 2]
    assert [s for _, s in counted.calls] == [eval_batch_seed(SEED, j) for j in (0, 1)]
    # Each batch on its own, by hand: the same samples, and NFE the mean over the calls.
    model = _model()
    alone = [
        model.sample(
            2, 7, config, generator=torch.Generator().manual_seed(eval_batch_seed(SEED, j))
        )
        for j in (0, 1)
    ]
    assert drawn.tokens.shape == (4, 7)
    assert torch.equal(drawn.tokens, torch.cat([r.tokens for r in alone]))
    assert drawn.nfe == (alone[0].nfe + alone[1].nfe) / 2
    ratios = torch.cat([r.idle_steps.double() / r.num_steps for r in alone])
    assert torch.equal(drawn.idle_ratio, ratios)
    again = draw_text_samples(_model(), 4, 2, 7, config, SEED, torch.device("cpu"))
    assert torch.equal(again.tokens, drawn.tokens) and again.nfe == drawn.nfe


def test_one_call_draws_from_the_stream_itself():
    config = SamplerConfig(steps=6)
    counted = _Counted(_model())
    drawn = draw_text_samples(counted, 3, 0, 7, config, SEED, torch.device("cpu"))
    assert counted.calls == [(3, SEED)]
    assert drawn.nfe == float(
        counted.model.sample(3, 7, config, generator=torch.Generator().manual_seed(SEED)).nfe
    )


def test_sample_batch_must_divide_the_count():
    assert build_dataclass(TextLMParams, {"sample_count": 100, "sample_batch": 25}, "task")
    with pytest.raises(ConfigError, match="task.sample_batch: expected 0 .* of sample_count 100"):
        build_dataclass(TextLMParams, {"sample_count": 100, "sample_batch": 30}, "task")


@pytest.mark.slow
def test_the_text_task_with_the_paper_settings_end_to_end(tmp_path):
    # Block-Prime L' = 4, ell = 2 with BD3-LM's given first token, untrained: first
    # hitting makes one call per sub-token of tokens 1..15 in each of the two calls.
    overrides = {
        "task": {
            "block_size": 16,
            "eval_blocks": 4,
            "eval_passes": 1,
            "eval_batch": 2,
            "eval_strata": "batch",
            "sample_count": 4,
            "sample_batch": 2,
            "sample_first_hitting": True,
            "judge": None,
        },
        "model": {"ignore_bos": True},
    }
    (config,) = load_experiment("table1-cpu").resolve("cpu", overrides, ["block-prime-l4-l2"])
    task = TASKS.get("text-lm")(config.task.params, config)
    model = MODELS.get("bd3lm").build(config.model.params, task.data_spec()).eval()
    ctx = EvalContext(torch.device("cpu"), config.seed, tmp_path, ema=False)
    metrics = {m.name: m for m in task.evaluate(model, ctx).metrics}
    assert metrics["sample_nfe"].value == 15 * 2
    assert metrics["sample_nfe"].card["sample_batch"] == 2
    bound = metrics["val_nll_valid_bound"]
    assert bound.card["tokens_per_block"] == 15 and bound.card["strata"] == "batch"
