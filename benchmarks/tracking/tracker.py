"""MLflow tracking: one MLflow run per run id, metrics with identity cards.

* Store: see :mod:`benchmarks.tracking.store` (checked before any work starts).
* Each config's run id (a hash of the resolved config) is the tag ``primebench.run_id``;
  a re-submitted or requeued job finds its MLflow run by that tag and continues it.
* Every metric is logged with an identity card (estimator, eps, steps, samples, EMA,
  split, sampling dtype, ...) stored as the JSON tag ``card.<metric>``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ..config.run_config import RunConfig
from ..core import Metric
from .store import (
    check_tracking_reachable,
    open_client,
    resolve_tracking_uri,
    sqlite_path,
)

__all__ = [
    "Tracker",
    "EXPERIMENT_PREFIX",
    "RUN_ID_TAG",
]

log = logging.getLogger("primebench")

EXPERIMENT_PREFIX = "primebench/"
RUN_ID_TAG = "primebench.run_id"
COMPLETE_TAG = "primebench.complete"
STATE_TAG = "primebench.state"  # running / requeued / interrupted / done / failed
REQUEUES_TAG = "primebench.requeues"
STEP_TAG = "primebench.step"  # the training step of the last saved checkpoint
CONFIG_TAG = "primebench.config_logged"  # params and config.json are in the run
ERROR_TAG = "primebench.error"  # the first line of the error that failed the run
# Machine figures a run logs and the cost estimate reads back.
STEP_METRIC = "perf/step_time_s"
EVAL_TIME_METRIC = "perf/eval_time_s"
SAMPLES_METRIC = "perf/samples_per_s"


def _git_commit() -> str:
    root = Path(__file__).resolve().parents[2]  # the repository (or the installed tree)
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _versions() -> dict[str, str]:
    out = {}
    for package in ("primebench", "torch", "lightning", "mlflow", "numpy"):
        try:
            out[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[f"version.{package}"] = "not installed"
    return out


class Tracker:
    """MLflow bookkeeping of one run config."""

    def __init__(self, uri: str | None = None):
        self.uri = resolve_tracking_uri(uri)
        check_tracking_reachable(self.uri)
        self.client = open_client(self.uri)

    def experiment_id(self, experiment: str) -> str:
        name = EXPERIMENT_PREFIX + experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        path = sqlite_path(self.uri)
        if path is not None:
            location = (path.parent / "mlartifacts" / experiment).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # another job created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def find_run(self, config: RunConfig) -> Any | None:
        exp = self.experiment_id(config.experiment)
        runs = self.client.search_runs(
            [exp], filter_string=f"tags.`{RUN_ID_TAG}` = '{config.run_id}'", max_results=5
        )
        return runs[0] if runs else None

    def is_complete(self, run: Any) -> bool:
        return run.data.tags.get(COMPLETE_TAG) == "true"

    def start(self, config: RunConfig) -> str:
        """The MLflow run id for ``config``: the existing one, else a new run."""
        run = self.find_run(config)
        if run is not None:
            self.client.update_run(run.info.run_id, status="RUNNING")
            self.client.set_tag(run.info.run_id, STATE_TAG, "running")
            # A kill between creating the run and recording its config left them out.
            if run.data.tags.get(CONFIG_TAG) != "true":
                self._record_config(run.info.run_id, config, frozenset(run.data.params))
            return run.info.run_id
        tags = {
            RUN_ID_TAG: config.run_id,
            "primebench.experiment": config.experiment,
            "primebench.variant": config.variant,
            "primebench.scale": config.scale,
            "primebench.task": config.task.name,
            "primebench.model": config.model.name if config.model else "none",
            "git.commit": _git_commit(),
            STATE_TAG: "running",
            REQUEUES_TAG: "0",
            **_versions(),
        }
        run = self.client.create_run(
            self.experiment_id(config.experiment),
            run_name=f"{config.variant}-{config.run_id}",
            tags=tags,
        )
        self._record_config(run.info.run_id, config)
        return run.info.run_id

    def _record_config(
        self, run_id: str, config: RunConfig, present: frozenset[str] = frozenset()
    ) -> None:
        """Params (those not ``present`` already) and ``config.json``, then the tag
        saying both are there."""
        from mlflow.entities import Param

        flat = config.flat_params()
        params = [Param(k, v[:6000]) for k, v in flat.items() if k not in present]
        for start in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[start : start + 100])
        self.client.log_text(
            run_id, json.dumps(config.to_dict(), indent=2, sort_keys=True), "config.json"
        )
        self.client.set_tag(run_id, CONFIG_TAG, "true")

    def log_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        """Log ``metrics`` with their cards; a point (name, step) already in the run is
        not logged again, so an evaluation repeated after a failure that followed its
        logging (an artifact upload, a kill) leaves each point once."""
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import RunTag

        now = int(time.time() * 1000)
        logged = {
            name: {point.step for point in self.client.get_metric_history(run_id, name)}
            for name in {m.name for m in metrics}
        }
        entries = [
            MlflowMetric(m.name, float(m.value), now, m.step if m.step is not None else 0)
            for m in metrics
            if (m.step if m.step is not None else 0) not in logged[m.name]
        ]
        cards: dict[str, dict[str, Any]] = {}
        for m in metrics:
            cards.setdefault(m.name, m.card)
        tags = [
            RunTag(f"card.{name}", json.dumps(card, sort_keys=True)) for name, card in cards.items()
        ]
        for start in range(0, len(entries), 500):
            self.client.log_batch(run_id, metrics=entries[start : start + 500])
        for start in range(0, len(tags), 100):
            self.client.log_batch(run_id, tags=tags[start : start + 100])

    def log_artifacts(self, run_id: str, paths: dict[str, Path]) -> None:
        for subdir, path in paths.items():
            self.client.log_artifact(run_id, str(path), artifact_path=subdir or None)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(k, v) for k, v in tags.items()]
        for start in range(0, len(entries), 100):
            self.client.log_batch(run_id, tags=entries[start : start + 100])

    def requeued(self, run_id: str, step: int) -> None:
        """The job stopped at ``step`` with a checkpoint and waits to be resumed."""
        tags = self.client.get_run(run_id).data.tags
        count = int(tags.get(REQUEUES_TAG, "0")) + 1
        tags = {STATE_TAG: "requeued", REQUEUES_TAG: str(count), STEP_TAG: str(step)}
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, "KILLED")

    def interrupted(self, run_id: str, step: int | None) -> None:
        """Stopped by SIGINT / SIGTERM (at ``step``, with a checkpoint, if training); the
        next start resumes it. KILLED, never FINISHED: its metrics are not complete."""
        tags = {STATE_TAG: "interrupted"}
        if step is not None:
            tags[STEP_TAG] = str(step)
        self.set_tags(run_id, tags)
        self.client.set_terminated(run_id, "KILLED")

    def finish(self, run_id: str) -> None:
        # Terminated first: a kill between the two leaves a run that is not complete,
        # which the next start finishes, never a complete run left RUNNING.
        self.client.set_terminated(run_id, "FINISHED")
        self.set_tags(run_id, {COMPLETE_TAG: "true", STATE_TAG: "done"})

    def fail(self, run_id: str, error: BaseException | None = None) -> None:
        """Mark the run FAILED, with the error's first line (and the error's own tags,
        e.g. the step of a non-finite loss). Never raises: a store that cannot take the
        mark (a full disk) must not hide the error that ended the run."""
        tags = {STATE_TAG: "failed"}
        if error is not None:
            lines = str(error).strip().splitlines()
            tags[ERROR_TAG] = f"{type(error).__name__}: {lines[0] if lines else ''}"[:5000]
            tags.update(getattr(error, "tags", lambda: {})())
        try:
            self.set_tags(run_id, tags)
            self.client.set_terminated(run_id, "FAILED")
        except Exception as err:  # noqa: BLE001 - reported, the original error goes on
            log.warning("could not mark MLflow run %s failed: %s", run_id, err)

    def final_metrics(self, run_id: str) -> dict[str, float]:
        return dict(self.client.get_run(run_id).data.metrics)
