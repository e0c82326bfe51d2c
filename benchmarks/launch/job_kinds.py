"""The kind of a job, which decides the cluster profile it gets
(:mod:`benchmarks.launch.job_profiles`).

Every run of a plan is one of three kinds:

* ``training``: it trains a model (a model of its own, a task that trains, ``train.steps``
  > 0, no released weights), then evaluates it. These are the runner's conditions for
  training (:mod:`benchmarks.training.runner`), so the kind says what the job will do.
* ``evaluation``: it only evaluates: released weights (``--weights released``), the
  checkpoint(s) of an upstream run (``upstream:``), or a task or run that trains nothing.
  The dry run estimates it from a measured evaluation (:mod:`benchmarks.launch.estimate`).
* ``cpu``: its task needs no device (``Task.needs_device = False``: a simulation such as
  idle-steps), so its job holds no GPU, whatever profile the user gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.run_config import RunConfig
from ..registry import TASKS

__all__ = ["KINDS", "JobKind", "job_kind"]

KINDS = ("training", "evaluation", "cpu")


@dataclass(frozen=True)
class JobKind:
    """A run's kind (one of :data:`KINDS`) and why it is not training ("" when it is)."""

    name: str
    why: str

    def describe(self) -> str:
        return f"{self.name}: {self.why}" if self.why else self.name


def job_kind(config: RunConfig) -> JobKind:
    """The kind of ``config``'s job; see the module docstring."""
    task = TASKS.get(config.task.name, path="task.name")
    if not task.needs_device:
        return JobKind("cpu", "needs no device")
    if config.weights is not None:
        return JobKind("evaluation", "released weights")
    if config.upstream is not None and (config.model is None or not task.trainable):
        return JobKind("evaluation", f"reads {config.upstream.experiment}")
    if not task.trainable:
        return JobKind("evaluation", "task trains nothing")
    if config.model is None:
        return JobKind("evaluation", "no model")
    if config.train.steps <= 0:
        return JobKind("evaluation", "train.steps = 0")
    return JobKind("training", "")
