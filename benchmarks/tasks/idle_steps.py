"""Idle steps of the reverse sampler: Figure 1 and the ISR column of Table 1.

The sampler's reveal decisions do not depend on the network (docs/method.md §6.4), so a
network returning constant logits has the idle-step statistics of a trained model. Each
run simulates ``runs`` sequences of length L per number of steps T and logs, at MLflow
step T: the mean idle count, its standard error, the closed form
sum_k (1 - delta_alpha_k)^(L ell), and the idle-step ratios (count / T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm import tqdm

from prime import Sampler, SamplerConfig, SubTokenizer, idle_step_probabilities

from ..config.validation import within
from ..core import ConfigError, DataSpec, EvalContext, EvalOutput, Metric, Task, require_at_least
from ..registry import TASKS
from ..streams import idle_seed

__all__ = ["IdleSteps", "simulate_idle_steps"]

FIGURE_1_STEPS = (32, 64, 128, 256, 512, 768, 1024, 1536, 2048)


@dataclass(frozen=True)
class IdleStepsParams:
    seq_len: int = 1024
    """L, tokens per simulated sequence (Table 1 and Figure 1: 1024)."""
    steps: tuple[int, ...] = FIGURE_1_STEPS
    """The numbers of sampler steps T simulated, each logged at MLflow step T (default:
    Figure 1's x-axis)."""
    ell: int = field(
        default=1,
        metadata=within(
            1,
            16,
            why="the simulated sampler holds 2^(ell - 1) probabilities per token, 32768 at "
            "ell = 16, so its memory and time double with each further sub-token",
        ),
    )
    """Sub-tokens per token; 1: MDM (the paper: up to 8)."""
    runs: int = 10
    """Simulated sequences per T (the paper averages 10 runs)."""
    schedule: Literal["linear", "loglinear", "polynomial", "cosine"] = "linear"
    """alpha_t of the reveal probabilities (docs/method.md §3.1); linear and loglinear give the
    same sampler, with ISR = (1 - 1/T)^(L ell) on the uniform grid (§6.4)."""
    eps: float = field(default=0.0, metadata=within(0, 1, high_open=True))
    """Last time of the grid t_k = 1 - k (1 - eps) / T; 0: the grid of the closed form in
    docs/method.md §6.4 (the text sampler: 1e-5)."""

    def __post_init__(self) -> None:
        require_at_least(self, "task", ("seq_len", "ell"))
        require_at_least(self, "task", ("runs",), minimum=2)  # a standard error needs 2
        if not self.steps or min(self.steps) < 1:
            raise ConfigError(f"task.steps: expected positive step counts, got {self.steps}")


def simulate_idle_steps(
    seq_len: int,
    num_steps: int,
    ell: int,
    runs: int,
    *,
    schedule: str = "linear",
    eps: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """(runs,) idle-step counts of the sampler with a constant network."""
    codec = SubTokenizer(2, ell)  # b = 2 for every ell: the alphabet does not affect idling

    def constant_net(y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*y_t.shape[:-1], codec.num_classes)

    sampler = Sampler(
        constant_net, codec, SamplerConfig(steps=num_steps, eps=eps), schedule=schedule
    )
    return sampler(runs, seq_len, generator=torch.Generator().manual_seed(seed)).idle_steps


@TASKS.register("idle-steps")
class IdleSteps(Task):
    Params = IdleStepsParams
    trainable = False
    needs_model = False
    needs_device = False  # a CPU simulation: its jobs hold no GPU

    def data_spec(self) -> DataSpec:
        return DataSpec(num_classes=2, seq_len=self.params.seq_len)

    def evaluate(self, model: torch.nn.Module | None, ctx: EvalContext) -> EvalOutput:
        p = self.params
        card = {
            "estimator": "simulation with a constant network; closed form (Prop. A.1)",
            "runs": p.runs,
            "seq_len": p.seq_len,
            "ell": p.ell,
            "schedule": p.schedule,
            "eps": p.eps,
            "se": "sqrt(sum_k p_k (1 - p_k) / runs), an upper bound",
        }
        metrics = []
        for num_steps in tqdm(p.steps, desc=f"idle steps, ell={p.ell}", unit="T"):
            probs = idle_step_probabilities(num_steps, p.seq_len, p.ell, p.schedule, eps=p.eps)
            counts = simulate_idle_steps(
                p.seq_len,
                num_steps,
                p.ell,
                p.runs,
                schedule=p.schedule,
                eps=p.eps,
                seed=idle_seed(ctx.seed, num_steps),
            ).double()
            # Idle indicators of different steps are negatively correlated, so the sum of
            # their Bernoulli variances bounds the variance of the count.
            se = math.sqrt(float((probs * (1 - probs)).sum()) / p.runs)
            values = {
                "idle_steps": float(counts.mean()),
                "idle_steps_se": se,
                "idle_steps_closed_form": float(probs.sum()),
                "isr": float(counts.mean()) / num_steps,
                "isr_closed_form": float(probs.sum()) / num_steps,
            }
            metrics += [Metric(k, v, card, step=num_steps) for k, v in values.items()]
        return EvalOutput(metrics=metrics)
