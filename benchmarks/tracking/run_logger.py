"""The MLflow logger of training: each metric point of a run once, however often it was
interrupted.

The metric steps of a run are the same however often it stopped: every ``every``-th
step (and the last), each once. Steps already in the run are not logged again: after a
hard kill the run resumes from its last periodic checkpoint and replays, bit for bit,
steps that were logged after it; the checkpoint of a step is written only after the
step's points are in the store (:class:`benchmarks.training.checkpoint_writer.PeriodicCheckpoints`),
so no step is skipped either. The off-grid step at which a job stops on the warning
signal is not logged.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import MLFlowLogger

__all__ = ["OpenRunLogger", "flush_step_metrics"]


def flush_step_metrics(trainer: Any) -> None:
    """Send the metric points of the step that just ended to the loggers now, from a
    batch-end hook, rather than after the batch-end hooks (where Lightning sends them,
    with the same step number and the same values): a checkpoint written after this
    call never holds a step whose points could still be lost. Lightning's later send
    of the same points is dropped by :class:`OpenRunLogger` (a step already logged)."""
    # Lightning has no public call for this; the kill test (tests/system/test_kill_torture.py)
    # checks that every point arrives once.
    trainer._logger_connector.update_train_step_metrics()


class OpenRunLogger(MLFlowLogger):
    """Logs into the existing MLflow run ``run_id`` and leaves it open (evaluation follows
    training); ``every``: the logging interval, ``last_step``: the run's last step."""

    def __init__(self, tracking_uri: str, run_id: str, every: int, last_step: int):
        super().__init__(tracking_uri=tracking_uri, run_id=run_id)
        self.every, self.last_step = every, last_step
        client = self.experiment
        # The newest step of each metric already in the run: a point at or before it
        # was logged by an earlier start (or a moment ago) and is not logged again.
        self._newest = {
            key: max((m.step for m in client.get_metric_history(run_id, key)), default=-1)
            for key in client.get_run(run_id).data.metrics
        }

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if step is not None:
            on_grid = (step + 1) % self.every == 0 or step == self.last_step
            if not on_grid:
                return
            metrics = {k: v for k, v in metrics.items() if step > self._newest.get(k, -1)}
            if not metrics:
                return
        super().log_metrics(metrics, step)
        if step is not None:
            self._newest.update(dict.fromkeys(metrics, step))

    def finalize(self, status: str = "success") -> None:
        pass
