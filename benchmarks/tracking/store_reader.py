"""A read-only view of the tracking store (MLflow), for ``status`` and dry runs.

Unlike :class:`benchmarks.tracking.tracker.Tracker` it never creates anything: no sqlite file
(a store that does not exist yet simply has no runs), no MLflow experiment, no run.
Runs are found by the run-id tag, as the jobs find them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .store import check_tracking_reachable, open_client, resolve_tracking_uri
from .tracker import COMPLETE_TAG, EXPERIMENT_PREFIX, REQUEUES_TAG, RUN_ID_TAG, STATE_TAG, STEP_TAG

__all__ = ["StoreReader", "run_state", "requeue_count"]

_PAGE = 1000


def run_state(run: Any) -> str:
    """``running`` / ``requeued`` / ``interrupted`` / ``done`` / ``failed`` from the run's
    tags."""
    tags = run.data.tags
    if tags.get(COMPLETE_TAG) == "true":
        return "done"
    return tags.get(STATE_TAG) or {"FAILED": "failed", "KILLED": "failed"}.get(
        run.info.status, "running"
    )


def requeue_count(run: Any) -> int:
    try:
        return int(run.data.tags.get(REQUEUES_TAG, "0"))
    except ValueError:
        return 0


class StoreReader:
    """Runs of the store at ``uri`` by experiment and run id (cached per experiment)."""

    def __init__(self, uri: str | None = None):
        self.uri = resolve_tracking_uri(uri)
        self.client: Any = None
        self._runs: dict[str, dict[str, Any]] = {}
        if self.uri.startswith("sqlite:///"):
            if not Path(self.uri[len("sqlite:///") :]).is_file():
                return  # no store yet: no runs, and nothing is created
        check_tracking_reachable(self.uri, write=False)
        self.client = open_client(self.uri, write=False)

    def runs(self, experiment: str) -> dict[str, Any]:
        """Run id -> newest MLflow run of ``experiment`` carrying that run id."""
        if experiment in self._runs:
            return self._runs[experiment]
        found: dict[str, Any] = {}
        exp = (
            self.client.get_experiment_by_name(EXPERIMENT_PREFIX + experiment)
            if (self.client is not None)
            else None
        )
        if exp is not None:
            token = None
            while True:
                page = self.client.search_runs(
                    [exp.experiment_id], max_results=_PAGE, page_token=token
                )
                for run in page:
                    run_id = run.data.tags.get(RUN_ID_TAG)
                    old = found.get(run_id)
                    if run_id and (old is None or run.info.start_time > old.info.start_time):
                        found[run_id] = run
                token = page.token
                if not token:
                    break
        self._runs[experiment] = found
        return found

    def find(self, experiment: str, run_id: str) -> Any | None:
        return self.runs(experiment).get(run_id)

    def step_reached(self, run: Any) -> int | None:
        """Optimizer steps done: one past the last ``train/loss`` step, or the step of the
        last requeue's checkpoint, whichever is later (None if neither is recorded)."""
        history = self.client.get_metric_history(run.info.run_id, "train/loss")
        logged = max((m.step + 1 for m in history), default=None)
        tagged = run.data.tags.get(STEP_TAG)
        candidates = [s for s in (logged, int(tagged) if tagged else None) if s is not None]
        return max(candidates) if candidates else None
