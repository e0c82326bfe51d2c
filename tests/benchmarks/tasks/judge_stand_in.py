"""A stand-in for the cpu scale's judge run (text-judge/ar-judge): its model with random
weights, written where and as :func:`benchmarks.training.checkpoints.load_trained_model` reads a
trained run's last checkpoint (no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from baselines import AutoregressiveLM
from benchmarks.config.experiments import load_experiment
from benchmarks.config.run_config import RunConfig
from benchmarks.registry import MODELS, TASKS
from benchmarks.training.checkpoints import RUN_ID_KEY, last_checkpoint


def judge_spec() -> RunConfig:
    (spec,) = load_experiment("text-judge").resolve("cpu", None, ["ar-judge"])
    return spec


def random_judge_model(spec: RunConfig, seed: int = 0) -> AutoregressiveLM:
    """The judge's model with every layer random (the DiT zero-initialises its adaLN
    modulations and head, which would make every prediction uniform)."""
    task = TASKS.get(spec.task.name)(spec.task.params, spec)
    torch.manual_seed(seed)
    model = MODELS.get(spec.model.name).build(spec.model.params, task.data_spec())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "modulation" in name or ".head." in name:
                p.normal_(0.0, 0.3)
    return model.eval()


def save_judge(
    runs: Path, model: AutoregressiveLM, spec: RunConfig, step: int | None = None
) -> Path:
    """``model`` as the judge run's last checkpoint at optimizer step ``step`` (default:
    the run's last step)."""
    path = last_checkpoint(runs, spec.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            RUN_ID_KEY: spec.run_id,
            "global_step": spec.train.steps if step is None else step,
        },
        path,
    )
    return path
