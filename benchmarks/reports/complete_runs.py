"""The complete runs of one scale, from every ``primebench/*`` MLflow experiment."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..tracking.store import check_tracking_reachable, open_client, resolve_tracking_uri
from ..tracking.tracker import COMPLETE_TAG, EXPERIMENT_PREFIX

__all__ = ["load_runs"]


def load_runs(tracking_uri: str | None, scale: str) -> tuple[pd.DataFrame, Any]:
    """All complete primebench runs of ``scale`` as one DataFrame (and the client).

    Columns: ``run_id`` (MLflow), ``params.*``, ``metrics.*`` (last values), ``tags.*``;
    one row per run id (its newest MLflow run). Nothing here needs the network: local
    stores are read directly, servers over HTTP.
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_reachable(uri, write=False)
    client = open_client(uri, write=False)
    experiments = [
        e.experiment_id for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX)
    ]
    if not experiments:
        return pd.DataFrame(), client
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(
        experiment_ids=experiments,
        filter_string=f"tags.`primebench.scale` = '{scale}' and tags.`{COMPLETE_TAG}` = 'true'",
        output_format="pandas",
    )
    if runs.empty:
        return runs, client
    runs = runs.sort_values("start_time").groupby("tags.primebench.run_id").tail(1)
    return runs.reset_index(drop=True), client
