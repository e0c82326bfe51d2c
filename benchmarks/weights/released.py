"""A run's model with its released weights: built as the variant's (or its upstream
variant's) model, the file fetched, read by its format's loader, recorded on the run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from ..config.experiments import upstream_config
from ..config.run_config import RunConfig
from ..core import DataSpec
from ..registry import MODELS, TASKS
from ..tracking.tracker import Tracker
from .hub import FetchedWeights, fetch_weights
from .hub_models import load_hub_bd3lm, load_hub_mdlm
from .mdm_prime_image import load_mdm_prime_image
from .mdm_prime_text import load_mdm_prime_text

__all__ = ["LOADERS", "released_model", "weights_tags"]

log = logging.getLogger("primebench")

Loader = Callable[..., dict[str, str]]  # (model, path, **checks) -> notes for the run

LOADERS: dict[str, Loader] = {
    "mdm-prime-text": load_mdm_prime_text,
    "mdm-prime-image": load_mdm_prime_image,
    "hub-mdlm": load_hub_mdlm,
    "hub-bd3lm": load_hub_bd3lm,
}


def _checks(fmt: str, trained: RunConfig, data: DataSpec) -> dict[str, Any]:
    """What a format's loader can check beyond the model: the image dataset the file was
    trained on, the sequence length a hub BD3-LM's attention mask was built for."""
    if fmt == "mdm-prime-image":
        return {"dataset": getattr(trained.task.params, "dataset", None)}
    if fmt == "hub-bd3lm":
        return {"seq_len": data.seq_len}
    return {}


def weights_tags(fetched: FetchedWeights, info: dict[str, str]) -> dict[str, str]:
    """What the run records about the file it evaluated: where it came from (the commit a
    branch resolved to), its sha256 and size, and what the format's loader read."""
    return {
        "primebench.weights": fetched.origin,
        "weights.sha256": fetched.sha256,
        "weights.bytes": str(fetched.size),
        "weights.revision": fetched.revision or "-",
        **info,
    }


def released_model(
    config: RunConfig,
    model: nn.Module | None,
    tracker: Tracker | None = None,
    mlflow_run_id: str | None = None,
) -> tuple[nn.Module, str]:
    """``model`` (or, for an evaluation of an upstream run, the upstream variant's model,
    built here) with the weights ``config.weights`` names, and the line every metric card
    of the run carries: ``released weights: <repo>/<file>@<revision> (commit, sha256)``.
    The file's origin, checksum and the loader's notes become tags of the MLflow run."""
    weights = config.weights
    if weights is None:
        raise ValueError(f"{config.experiment}/{config.variant} names no released weights")
    trained = upstream_config(config) if config.upstream is not None else config
    task = TASKS.get(trained.task.name)(trained.task.params, trained)
    data = task.data_spec()
    if model is None:
        model = MODELS.get(trained.model.name).build(trained.model.params, data)
    fetched = fetch_weights(
        weights.repo,
        weights.file,
        weights.revision,
        companions=weights.companions,
        expected_sha256=weights.sha256,
    )
    options = _checks(weights.format, trained, data)
    info = LOADERS[weights.format](model, fetched.path, **options)
    tags = weights_tags(fetched, info)
    log.info("released weights %s (sha256 %s) loaded", fetched.origin, fetched.sha256[:12])
    if tracker is not None and mlflow_run_id is not None:
        tracker.set_tags(mlflow_run_id, tags)
    card = f"released weights: {weights.origin}"
    if fetched.revision and fetched.revision != weights.revision:
        card += f" (commit {fetched.revision})"
    return model, f"{card}, sha256 {fetched.sha256}"
