"""Idle steps of the reverse sampler: Figure 1 and the ISR column of Table 1.

The sampler's reveal decisions do not depend on the network (PRIME_SPEC §6.4), so a
network returning constant logits has the idle-step statistics of a trained model. Each
run simulates ``runs`` sequences of length L per number of steps T and logs, at MLflow
step T: the mean idle count, its standard error, the closed form
sum_k (1 - delta_alpha_k)^(L ell), and the idle-step ratios (count / T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from tqdm import tqdm

from prime import SubTokenizer, idle_step_probabilities, sample

from ..config import ConfigError, require_at_least
from ..registry import TASKS
from ..report import ReportContext
from ..tracking import Metric
from .base import DataSpec, EvalContext, EvalOutput, Task

__all__ = ["IdleSteps", "simulate_idle_steps"]

FIGURE_1_STEPS = (32, 64, 128, 256, 512, 768, 1024, 1536, 2048)


@dataclass(frozen=True)
class IdleStepsParams:
    seq_len: int = 1024
    steps: tuple[int, ...] = FIGURE_1_STEPS
    ell: int = 1
    runs: int = 10
    schedule: Literal["linear", "loglinear", "polynomial", "cosine"] = "linear"
    eps: float = 0.0

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

    result = sample(
        constant_net,
        codec,
        batch_size=runs,
        seq_len=seq_len,
        num_steps=num_steps,
        schedule=schedule,
        eps=eps,
        generator=torch.Generator().manual_seed(seed),
    )
    return result.idle_steps


@TASKS.register("idle-steps")
class IdleSteps(Task):
    Params = IdleStepsParams
    trainable = False
    needs_model = False
    report_title = "Idle steps (Figure 1, Table 1 ISR column)"

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
                seed=ctx.seed * 100_003 + num_steps,
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

    @classmethod
    def report(cls, ctx: ReportContext) -> None:
        rows = []
        for _, run in ctx.runs.iterrows():
            ell = int(run["params.task.ell"])
            hist = {
                key: ctx.metric_history(run["run_id"], key)
                for key in ("idle_steps", "idle_steps_se", "idle_steps_closed_form")
            }
            for step, value in hist["idle_steps"].items():
                rows.append(
                    {
                        "ell": ell,
                        "T": step,
                        "L": int(run["params.task.seq_len"]),
                        "runs": int(run["params.task.runs"]),
                        "simulated": value,
                        "se": hist["idle_steps_se"][step],
                        "closed_form": hist["idle_steps_closed_form"][step],
                    }
                )
        if not rows:
            return
        df = pd.DataFrame(rows).sort_values(["ell", "T"])
        cls._isr_table(ctx, df)
        cls._count_table(ctx, df)
        cls._figure(ctx, df)

    @staticmethod
    def _isr_table(ctx: ReportContext, df: pd.DataFrame) -> None:
        paper = ctx.paper("isr").set_index("ell")["isr_percent"]
        at = df[(df["T"] == 1024) & (df["L"] == 1024)]
        if at.empty:
            return
        table = pd.DataFrame(
            {
                "ell": at["ell"].to_numpy(),
                "model": ["MDLM" if e == 1 else f"MDLM-Prime l={e}" for e in at["ell"]],
                "paper ISR": [f"{paper[e]:.2f}%" if e in paper.index else "-" for e in at["ell"]],
                "closed form": [f"{100 * v / 1024:.2f}%" for v in at["closed_form"]],
                "simulated": [
                    f"{100 * v / 1024:.2f}% ± {100 * s / 1024:.2f}"
                    for v, s in zip(at["simulated"], at["se"], strict=True)
                ],
                "z": [
                    f"{(v - c) / s:+.2f}"
                    for v, c, s in zip(at["simulated"], at["closed_form"], at["se"], strict=True)
                ],
            }
        )
        ctx.write_table(
            table,
            "table1_isr",
            "Idle-step ratio at L = T = 1024 (Table 1, ISR column)",
            notes=[
                f"simulated: mean of {int(at['runs'].iloc[0])} sampler runs with a constant "
                "network ± standard error (bounded from the closed-form variance); "
                "closed form: sum_k (1 - delta_alpha_k)^(L ell) / T, linear schedule.",
            ],
        )

    @staticmethod
    def _count_table(ctx: ReportContext, df: pd.DataFrame) -> None:
        wide = df.assign(
            cell=[
                f"{s:.1f} ({c:.1f})"
                for s, c in zip(df["simulated"], df["closed_form"], strict=True)
            ]
        ).pivot(index="T", columns="ell", values="cell")
        wide.columns = [f"l={e}" for e in wide.columns]
        ctx.write_table(
            wide.reset_index(),
            "figure1_idle_counts",
            "Idle steps per sequence: simulated (closed form), L = 1024 (Figure 1 data)",
        )

    @staticmethod
    def _figure(ctx: ReportContext, df: pd.DataFrame) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for ell, group in df.groupby("ell"):
            label = "MDM" if ell == 1 else f"MDM-Prime l={ell}"
            line = ax.plot(group["T"], group["closed_form"], "-", label=label)[0]
            ax.errorbar(
                group["T"],
                group["simulated"],
                yerr=2 * group["se"],
                fmt="o",
                ms=4,
                color=line.get_color(),
                capsize=2,
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps T")
        ax.set_ylabel("idle steps per sequence")
        ax.set_title("Idle steps, L = 1024 (lines: closed form; dots: simulated ± 2 SE)")
        ax.grid(alpha=0.3)
        ax.legend()
        ctx.save_figure(fig, "figure1_idle_steps")
