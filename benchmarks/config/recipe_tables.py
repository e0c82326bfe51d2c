"""Settings the authors give as a table, looked up for one run (recipe cards'
``{table: NAME}`` entries).

``authors-image``: ``results/paper/image_sampler_settings.csv``, the rows of the authors'
image README (chen-hao-chao/mdm-prime at 17b9489, "Pretrained Weights and
Hyperparameters"): per dataset, model and NFE, the early-stopped epoch and the sampler
setting (temperature, corrector and time-warp triples, and which of their two solvers).
The row of a run is found from its dataset, its model (that of the upstream run for an
evaluation-only task) and its sampler steps. Training length is the epoch count times the
authors' optimizer steps per epoch: 8 ranks of 64 images, each rank's share padded to
ceil(N / 8) by the distributed sampler and its last partial batch dropped (image/main.py
lines 98-108), 97 steps on CIFAR-10 and 2,502 on ImageNet-32.
"""

from __future__ import annotations

import csv
import math
from functools import cache
from typing import Any

from ..core import ConfigError
from ..resources import paper_dir
from .experiments import upstream_config
from .run_config import RunConfig

__all__ = ["TRAIN_IMAGES", "steps_per_epoch", "authors_image_row", "table_entry"]

TRAIN_IMAGES = {"cifar10": 50_000, "imagenet32": 1_281_167}
RANKS, RANK_BATCH = 8, 64  # the README's torchrun --nproc_per_node=8; --batch_size 64
SOURCE = "mdm-prime image/README.md"


def steps_per_epoch(dataset: str) -> int:
    """Optimizer steps of one of the authors' epochs: floor(ceil(N / 8) / 64)."""
    return math.ceil(TRAIN_IMAGES[dataset] / RANKS) // RANK_BATCH


def _model_row_key(config: RunConfig) -> tuple[str, int]:
    trained = upstream_config(config) if config.model is None else config
    name = trained.model.name
    if name == "mdm-mixture":
        return "MDM-Mixture", 1
    ell = getattr(trained.model.params, "ell", 1)
    return ("MDM", 1) if name == "mdm" or ell == 1 else ("MDM-Prime", ell)


@cache
def _image_rows() -> tuple[dict[str, str], ...]:
    """The rows of ``image_sampler_settings.csv``, read once (a card asks for five
    settings of every image run)."""
    with open(paper_dir() / "image_sampler_settings.csv", newline="") as f:
        return tuple(csv.DictReader(line for line in f if not line.startswith("#")))


def authors_image_row(config: RunConfig) -> dict[str, str]:
    """The authors' row for ``config``'s dataset, model and sampler steps (ConfigError if
    they give none)."""
    params = config.task.params
    model, ell = _model_row_key(config)
    for row in _image_rows():
        if (row["dataset"], row["model"], int(row["ell"]), int(row["nfe"])) == (
            params.dataset,
            model,
            ell,
            params.sample_steps,
        ):
            return row
    raise ConfigError(
        f"{config.experiment}/{config.variant}: the authors give no setting for "
        f"{params.dataset} {model} ell={ell} at NFE {params.sample_steps}"
    )


def _triple(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split())


def table_entry(table: str, key: str, config: RunConfig) -> dict[str, Any]:
    """Entry fields (kind, text, value) of setting ``key`` from ``table`` for ``config``."""
    if table != "authors-image":
        raise ConfigError(f"recipe: unknown table {table!r}; valid: authors-image")
    row = authors_image_row(config)
    where = (
        f"{SOURCE}, {row['source'].removeprefix('README ')}: {row['dataset']} {row['model']}"
        f" ell={row['ell']}, NFE {row['nfe']}"
    )
    if key in ("task.temperature", "task.corrector", "task.time_warp"):
        column = key.split(".")[1]
        text = where
        if column == "time_warp" and _triple(row[column]) == (1.0, 0.0, 0.0):
            # Read literally, 1 - a (1 - t)^beta + c sends every time to 0 at [1, 0, 0];
            # the README rows use it for the unwarped grid.
            text += " ([1, 0, 0] read as the uniform grid; literally 0, utils/solver.py:29, 131)"
        return dict(kind="source", text=text, value=_triple(row[column]))
    if key == "task.proposal":
        carry = row["carry_over"] == "true"
        solver = (
            "carry-over solver: digits from their marginals"
            if carry
            else ("no-carry-over solver: one token per pixel")
        )
        if carry and row["ell"] == "1":
            solver += (
                "; at ell = 1 the released one stops on its 257 + 1 probabilities against 257 "
                "states (utils/solver.py:89-92, utils/utils.py:57-68): the suite runs its law, "
                "the corrector drawing its own proposal, with the mask class dropped and the "
                "rest renormalised (prime/mask_class.py)"
            )
        return dict(
            kind="source", text=f"{where} ({solver})", value=("subtoken" if carry else "token")
        )
    if key == "train.steps":
        epochs, per = int(row["epochs"]), steps_per_epoch(row["dataset"])
        text = f"{where}: {epochs:,} epochs x {per:,} optimizer steps (image/main.py:98-108)"
        return dict(kind="source", text=text, value=epochs * per)
    raise ConfigError(f"recipe: table {table} gives no {key}")
