"""Likelihood time strata: over the whole evaluation set, or within each evaluation batch
(MDLM's and BD3-LM's validation), each batch from a seed of its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.config.run_config import ComponentConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.tasks.likelihood import block_nll
from benchmarks.tasks.text_params import TextLMParams
from benchmarks.tasks.zero_shot import ZeroShotParams

EPS, SEED = 1e-3, 123


class _Recorder(torch.nn.Module):
    """A diffusion model stand-in: k times per sequence; its "NLL" is one uniform draw per
    row from the generator it is handed (where a model draws its masks)."""

    time_eps = EPS

    def __init__(self, draws: int):
        super().__init__()
        self.draws, self.calls = draws, []

    def time_draws(self, seq_len: int) -> int:
        return self.draws

    def block_nll(self, x0, t, generator):
        value = torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
        self.calls.append((x0[:, 0].clone(), t.clone(), value))
        return {"valid_bound": value}


def _run(model, blocks, strata, batch=2):
    return block_nll(
        model, blocks, passes=1, batch=batch, seed=SEED, device=torch.device("cpu"), strata=strata
    )


def _by_hand(batch: int, strata: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``batch``'s times t_m = eps + (1 - eps) (u_m + m) / n, m < n, and then the
    generator's next draw, from the batch's own seed (the streams' hash, written out)."""
    seed = (SEED * 0x9E3779B97F4A7C15 + batch * 0xBF58476D1CE4E5B9 + 0) % (2**63 - 1)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(strata, generator=gen, dtype=torch.float64)
    t = (EPS + (1 - EPS) * ((u + torch.arange(strata)) / strata)).float()
    return t, torch.rand(2, generator=gen, dtype=torch.float64)


def test_batch_strata_are_one_stratum_set_per_batch_from_the_batch_seed():
    blocks = np.arange(4 * 3).reshape(4, 3)  # 4 sequences, batches of 2
    model = _Recorder(draws=1)
    sums = _run(model, blocks, "batch")
    for j, (first, t, value) in enumerate(model.calls):
        assert first.tolist() == [6 * j, 6 * j + 3]  # rows 2j, 2j + 1
        expected_t, expected_next = _by_hand(j, 2)
        assert torch.equal(t, expected_t)  # one time in [eps, (1+eps)/2), one above
        assert torch.equal(value, expected_next)  # the masks: the same batch's stream
        assert torch.equal(sums["valid_bound"][2 * j : 2 * j + 2], value)
    # A batch's draws do not depend on the others: evaluated alone, batch 0 is the same.
    alone = _Recorder(draws=1)
    _run(alone, blocks[:2], "batch")
    assert torch.equal(alone.calls[0][1], model.calls[0][1])


def test_block_times_are_stratified_over_the_rows_and_blocks_of_each_batch():
    model = _Recorder(draws=2)  # two time blocks per sequence, as BD3-LM's
    _run(model, np.zeros((4, 8), dtype=np.int64), "batch")
    for j, (_, t, _) in enumerate(model.calls):
        assert t.shape == (2, 2)
        expected_t, _ = _by_hand(j, 4)  # stratum m = 2 row + block
        assert torch.equal(t.flatten(), expected_t)


def test_set_strata_span_the_whole_evaluation_set():
    model = _Recorder(draws=1)
    _run(model, np.zeros((4, 3), dtype=np.int64), "set")
    t = torch.cat([call[1] for call in model.calls]).double()
    gen = torch.Generator().manual_seed(SEED)
    u = torch.rand(4, generator=gen, dtype=torch.float64)
    assert torch.equal(t.float(), (EPS + (1 - EPS) * ((u + torch.arange(4)) / 4)).float())


def test_the_settings_keep_old_run_ids_and_name_bad_values():
    for cls in (TextLMParams, ZeroShotParams):
        default = ComponentConfig("x", cls()).to_dict()
        assert "eval_strata" not in default and "sample_batch" not in default
        assert ComponentConfig("x", cls(eval_strata="batch")).to_dict()["eval_strata"] == "batch"
        with pytest.raises(ConfigError, match="task.eval_strata: expected one of 'set', 'batch'"):
            build_dataclass(cls, {"eval_strata": "pass"}, "task")
