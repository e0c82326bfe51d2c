"""train.loss_scale: torch GradScaler's law inside the suite's Lightning training.

The toy model's loss is G w, so every step's gradient is G exactly and the scaled one
S G: with G = 2^60, S G overflows float32 (2^128) exactly when S reaches 2^68.
"""

from __future__ import annotations

import json
import socket
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import Callback
from torch import nn

from benchmarks.config.train_config import TrainConfig
from benchmarks.core import ConfigError
from benchmarks.data.loader import ArrayRows
from benchmarks.runtime.distributed import World
from benchmarks.runtime.preemption import SIGNAL_AT_STEP_ENV, Preempted
from benchmarks.training import lightning_module as training
from benchmarks.training.hardware import select_hardware
from benchmarks.training.loss_scale import DynamicLossScale

G = 2.0**60
START = 2.0**66  # S G = 2^126: two doublings from the overflow
INTERVAL = 2
# Growth interval 2 from 2^66: steps 1, 3 double S; step 4 overflows (S G = 2^128) and
# halves it; then two clean steps double it again and step 7 overflows: one in three.
SCALES = [2.0**e for e in (66, 67, 67, 68, 67, 67, 68, 67)]  # S after each step
SKIPPED = [4, 7]


class _Slope(nn.Module):
    """loss = G w: the gradient is G at every step; records the weight each step sees."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))
        self.seen: list[float] = []

    def training_loss(self, x0, generator, shard):
        if shard.start == 0:
            self.seen.append(self.w.item())
        return self.w * G, {}


class _Record(Callback):
    """S after each optimizer step (micro-batches within a step see the same step)."""

    def __init__(self):
        self.scales: list[float] = []
        self._step: int | None = None

    def on_train_batch_end(self, trainer, module, *args):
        if trainer.global_step != self._step:
            self._step = trainer.global_step
            self.scales.append(float(module.loss_scale.scale))

    def on_train_start(self, trainer, module):
        self._step = trainer.global_step


def _train(tmp_path, monkeypatch, steps=8, loss_scale="dynamic", world=None, **train):
    cfg = TrainConfig(
        steps=steps,
        global_batch_size=4,
        lr=1e-2,
        betas=(0.9, 0.95),
        weight_decay=0.01,
        ema=0.999,
        loss_scale=loss_scale,
        loader_workers=0,
        checkpoint_every=100,
        precision="32-true",
        **train,
    )
    monkeypatch.setattr(
        training,
        "DynamicLossScale",
        partial(DynamicLossScale, init_scale=START, growth_interval=INTERVAL),
    )
    config = SimpleNamespace(train=cfg, seed=0, run_id="loss-scale", scale="cpu")
    model, record = _Slope(), _Record()
    rows = ArrayRows(np.zeros((16, 2), dtype=np.int64))
    extra = [record] if loss_scale == "dynamic" else []
    module = training.fit(
        model, rows, config, tmp_path, world or World(), select_hardware(cfg), None, extra
    )
    return model, module, record


def _rank_main(rank: int, port: int, out: str) -> None:
    """One of two gloo ranks training the toy run; writes its scales and final weight."""
    world = World(rank=rank, local_rank=rank, size=2, main_port=port)
    patch = pytest.MonkeyPatch()
    try:
        model, module, record = _train(Path(out), patch, world=world)
    finally:
        patch.undo()
    result = {
        "scales": record.scales,
        "w": model.w.item(),
        "skipped": int(module.loss_scale.skipped),
    }
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))


def _reference(steps: int, scaler: torch.amp.GradScaler | None) -> tuple[list[float], list]:
    """The authors' loop (image/utils/train_loop.py, grad_scaler.py) on the same loss:
    torch's own GradScaler, or none."""
    w = nn.Parameter(torch.tensor(0.5))
    opt = torch.optim.AdamW([w], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.01)
    seen, scales = [], []
    for _ in range(steps):
        seen.append(w.item())
        opt.zero_grad()
        loss = w * G
        if scaler is None:
            loss.backward()
            opt.step()
            continue
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return seen + [w.item()], scales


def test_an_overflow_skips_the_step_halves_the_scale_and_growth_doubles_it(tmp_path, monkeypatch):
    model, module, record = _train(tmp_path, monkeypatch)
    assert record.scales == SCALES
    seen = [*model.seen, model.w.item()]  # the weight before each step, and at the end
    moved = [seen[s + 1] != seen[s] for s in range(8)]
    assert moved == [s not in SKIPPED for s in range(8)]  # skipped: the weight is unchanged
    assert int(module.loss_scale.skipped) == len(SKIPPED)
    optimizer = module.trainer.optimizers[0]
    assert int(optimizer.state[model.w]["step"]) == 8 - len(SKIPPED)  # AdamW counts no skip
    assert int(module.ema.num_updates) == 8  # the EMA updates after a skipped step too
    # torch's GradScaler in the authors' loop takes the same steps, bit for bit
    expected, scales = _reference(8, torch.amp.GradScaler("cpu", START, growth_interval=2))
    assert seen == expected and scales == SCALES


def test_micro_batches_decide_on_the_summed_gradient(tmp_path, monkeypatch):
    # 2 micro-batches of 2 rows: each backward gives S G / 2, finite even at S = 2^68;
    # the sum before the step overflows as the whole batch's gradient does.
    model, module, record = _train(tmp_path, monkeypatch, micro_batch_size=2)
    assert record.scales == SCALES
    assert int(module.loss_scale.skipped) == len(SKIPPED)


def test_a_resumed_run_continues_the_same_scale_sequence(tmp_path, monkeypatch):
    whole, whole_module, _ = _train(tmp_path / "whole", monkeypatch)
    # stopped after step 5 (S = 2^67, one clean step counted): resumed, step 6 must grow
    monkeypatch.setenv(SIGNAL_AT_STEP_ENV, "6")
    with pytest.raises(Preempted):
        _train(tmp_path / "split", monkeypatch)
    monkeypatch.delenv(SIGNAL_AT_STEP_ENV)
    resumed, module, record = _train(tmp_path / "split", monkeypatch)
    assert record.scales == SCALES[6:]
    assert int(module.loss_scale.skipped) == len(SKIPPED)
    assert resumed.seen == whole.seen[6:] and resumed.w.item() == whole.w.item()


def test_none_trains_as_the_plain_loop_and_adds_no_state(tmp_path, monkeypatch):
    model, module, _ = _train(tmp_path, monkeypatch, steps=3, loss_scale="none")
    expected, _ = _reference(3, None)
    assert [*model.seen, model.w.item()] == expected
    assert module.loss_scale is None
    assert not any(key.startswith("loss_scale") for key in module.state_dict())


def test_the_scaled_backward_keeps_a_gradient_that_underflows_unscaled():
    # d/dw of ((w 2^120) 2^-60) 2^-100 is 2^-40, but the backward passes 2^-160, below
    # float32's smallest subnormal 2^-149: plain it rounds to 0, scaled by 2^16 it is 2^-144.
    def loss(w):
        return ((w * 2.0**120) * 2.0**-60) * 2.0**-100

    plain = nn.Parameter(torch.tensor(1.0))
    loss(plain).backward()
    assert plain.grad.item() == 0.0
    scaled = nn.Parameter(torch.tensor(1.0))
    scaler = DynamicLossScale()
    scaler.scale_loss(loss(scaled)).backward()
    assert not scaler.unscale_or_skip(torch.optim.SGD([scaled], lr=1.0))
    assert scaled.grad.item() == 2.0**-40


def test_the_growth_stops_below_the_float32_overflow():
    # as torch's update: a doubling that leaves float32 is not taken, the count restarts
    w = nn.Parameter(torch.tensor(1.0))
    scaler = DynamicLossScale(init_scale=2.0**127, growth_interval=1)
    for _ in range(2):
        w.grad = torch.tensor(1e-30)
        assert not scaler.unscale_or_skip(torch.optim.SGD([w], lr=1.0))
        assert float(scaler.scale) == 2.0**127 and int(scaler.clean_steps) == 0


def test_the_paper_defaults_are_torch_grad_scaler_defaults():
    scaler = DynamicLossScale()
    torch_scaler = torch.amp.GradScaler("cpu")
    assert float(scaler.scale) == torch_scaler.get_scale() == 2.0**16
    assert scaler.growth_interval == torch_scaler.get_growth_interval() == 2000
    assert scaler.growth_factor == torch_scaler.get_growth_factor() == 2.0
    assert scaler.backoff_factor == torch_scaler.get_backoff_factor() == 0.5


def test_the_setting_is_in_the_run_id_only_when_dynamic_and_checked():
    assert "loss_scale" not in TrainConfig().math_dict()
    assert TrainConfig(loss_scale="dynamic").math_dict()["loss_scale"] == "dynamic"
    with pytest.raises(ConfigError, match="train.loss_scale: expected 'none' or 'dynamic'"):
        TrainConfig(loss_scale="static")
    with pytest.raises(ConfigError, match="train.loss_scale: 'dynamic' with train.precision"):
        TrainConfig(loss_scale="dynamic", precision="16-mixed")


@pytest.mark.slow
def test_two_ranks_take_the_same_decisions_as_one_process(tmp_path, monkeypatch):
    # The decision is taken on the all-reduced gradients: both ranks skip the same steps,
    # and a skipped step (gradients dropped) leaves DDP's next all-reduce intact.
    one, _, record = _train(tmp_path / "one", monkeypatch)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_rank_main, args=(port, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["scales"] == record.scales == SCALES
        assert result["skipped"] == len(SKIPPED) and result["w"] == one.w.item()
