"""task.sample_retry: BD3-LM's redraw of a batch whose token entropy falls below 4 nats in
the 256 tokens before a block end (benchmarks.tasks.sample_retry)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.tasks.sample_retry import MAX_DRAWS, first_low_entropy_end, window_entropy
from benchmarks.tasks.text_params import TextLMParams
from benchmarks.tasks.text_samples import draw_text_samples
from prime import SamplerConfig, SampleResult
from tests.benchmarks.tasks.test_sample_batches import _model as _block_model

CPU = torch.device("cpu")


def _cycle(length: int, values: int, start: int = 0) -> torch.Tensor:
    """(length,) tokens start, start + 1, ..., start + values - 1, start, ..."""
    return start + torch.arange(length) % values


def _result(tokens: torch.Tensor, nfe: int) -> SampleResult:
    batch = tokens.shape[0]
    return SampleResult(
        tokens=tokens,
        subtokens=tokens[..., None],
        idle_steps=torch.zeros(batch, dtype=torch.long),
        batch_idle_steps=0,
        nfe=nfe,
        num_steps=nfe,
        num_classes=100,
    )


class _Scripted(torch.nn.Module):
    """Returns its scripted draws in turn: (tokens (L,) of every row, NFE)."""

    block_size = 16

    def __init__(self, draws):
        super().__init__()
        self.draws, self.generators = list(draws), []

    def sample(self, n, seq_len, config, *, generator):
        self.generators.append(generator)
        row, nfe = self.draws.pop(0)
        assert row.shape == (seq_len,)
        return _result(row.expand(n, -1).clone(), nfe)


def test_entropy_in_nats_of_the_pooled_values():
    assert window_entropy(_cycle(256, 64)) == pytest.approx(math.log(64), abs=1e-6)
    three_to_one = torch.tensor([[5, 5], [5, 9]])
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert window_entropy(three_to_one) == pytest.approx(expected, abs=1e-6)


def test_only_windows_ending_at_a_block_end_past_256_are_checked():
    # Zeros at 0..127, then a cycle of 64 values: uniform over 64 (ln 64 = 4.16 > 4) in
    # [128, 384), the only window checked with blocks of 128 (the end 256 is not > 256).
    tokens = torch.cat([torch.zeros(128, dtype=torch.long), _cycle(256, 64)])[None]
    assert first_low_entropy_end(tokens, 128) is None
    # Token by token the first end past 256 is 257: [1, 257) holds 127 + 3 zeros and
    # 63 values twice each, H = 2.73 nats.
    by_hand = -(130 / 256) * math.log(130 / 256) - 63 * (2 / 256) * math.log(2 / 256)
    assert by_hand < 4
    assert window_entropy(tokens[:, 1:257]) == pytest.approx(by_hand, abs=1e-5)
    assert first_low_entropy_end(tokens, 1) == 257
    # 256 tokens or fewer: never checked.
    assert first_low_entropy_end(torch.zeros(1, 256, dtype=torch.long), 4) is None


def test_the_rows_of_a_batch_are_pooled():
    # Each row alone is uniform over 32 values (ln 32 < 4); together over 64.
    rows = torch.stack([_cycle(300, 32), _cycle(300, 32, start=32)])
    assert first_low_entropy_end(rows[:1], 300) == 300
    assert first_low_entropy_end(rows, 300) is None


def test_a_low_entropy_draw_is_drawn_again_and_only_the_kept_draw_counts():
    bad, good = (torch.zeros(320, dtype=torch.long), 100), (_cycle(320, 64), 7)
    config = SamplerConfig(steps=4)
    model = _Scripted([bad, good])
    drawn = draw_text_samples(model, 1, 0, 320, config, 5, CPU, retry="bd3lms")
    assert torch.equal(drawn.tokens, good[0][None])
    assert drawn.nfe == 7 and drawn.rejected == 1
    # The redraw continues the batch's generator where the rejected draw left it.
    assert len(model.generators) == 2 and model.generators[0] is model.generators[1]
    (metric,) = drawn.retry_metrics({"samples": 1})
    assert (metric.name, metric.value, metric.card["retry"]) == ("sample_rejected", 1.0, "bd3lms")
    # Two batches of one: NFE the mean over the kept draws.
    model = _Scripted([good, bad, (_cycle(320, 64), 9)])
    drawn = draw_text_samples(model, 2, 1, 320, config, 5, CPU, retry="bd3lms")
    assert drawn.nfe == (7 + 9) / 2 and drawn.rejected == 1


def test_without_retry_every_draw_is_kept():
    model = _Scripted([(torch.zeros(320, dtype=torch.long), 100)])
    drawn = draw_text_samples(model, 1, 0, 320, SamplerConfig(steps=4), 5, CPU)
    assert drawn.nfe == 100 and drawn.rejected == 0
    assert drawn.retry_metrics({}) == []


def test_ten_rejected_draws_raise_an_error_naming_the_setting():
    model = _Scripted([(torch.zeros(320, dtype=torch.long), 1)] * (MAX_DRAWS + 1))
    with pytest.raises(RuntimeError, match="task.sample_retry = bd3lms: all 10 draws"):
        draw_text_samples(model, 1, 0, 320, SamplerConfig(steps=4), 5, CPU, retry="bd3lms")
    assert len(model.generators) == MAX_DRAWS == 10


def test_the_setting_is_checked_and_off_by_default():
    assert TextLMParams().sample_retry == "none"
    assert build_dataclass(TextLMParams, {"sample_retry": "bd3lms"}, "task").sample_retry
    with pytest.raises(ConfigError, match="task.sample_retry"):
        build_dataclass(TextLMParams, {"sample_retry": "always"}, "task")


def test_a_block_diffusion_model_checks_at_its_block_ends():
    # Seven tokens never reach a window of 256: the draws of bd3lms and none are the same.
    model, config = _block_model(), SamplerConfig(steps=6)
    kept = draw_text_samples(model, 2, 1, 7, config, 5, CPU, retry="bd3lms")
    plain = draw_text_samples(model, 2, 1, 7, config, 5, CPU)
    assert torch.equal(kept.tokens, plain.tokens) and kept.rejected == 0
