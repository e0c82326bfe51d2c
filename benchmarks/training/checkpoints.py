"""A run's checkpoints: checked before use, loaded for evaluation and fine-tuning.

A checkpoint lives at ``runs/<run id>/checkpoints/last.ckpt`` and carries the run id it
was saved by (``primebench_run_id``). Before a run resumes from it, or another run
loads its weights, :func:`check_checkpoint` refuses a file that is empty, truncated or
not a torch checkpoint, and one saved by another config (copied into the wrong run
directory), with an error naming the file. A run whose ``last.ckpt`` is damaged resumes
from its newest whole periodic checkpoint (:func:`resume_checkpoint`); with none, the
error says how to move the file aside to start from scratch. Nothing is deleted or
overwritten. Checkpoints are read as data (:func:`read_checkpoint`), never unpickled
as code; they are written by :mod:`benchmarks.training.checkpoint_writer`.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..config.experiments import resolve_variant
from ..config.overrides import parse_overrides
from ..config.run_config import RunConfig
from ..core import ConfigError
from ..registry import MODELS, TASKS
from ..tracking.tracker import Tracker
from .ema import EMA

__all__ = [
    "CheckpointError",
    "RUN_ID_KEY",
    "last_checkpoint",
    "kept_checkpoint",
    "check_checkpoint",
    "resume_checkpoint",
    "check_run_id",
    "load_trained_model",
    "initialise_from",
]

log = logging.getLogger("primebench")

RUN_ID_KEY = "primebench_run_id"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot or must not be used."""


def last_checkpoint(runs_dir: str | Path, run_id: str) -> Path:
    return Path(runs_dir) / run_id / "checkpoints" / "last.ckpt"


def kept_checkpoint(runs_dir: str | Path, run_id: str, step: int) -> Path:
    """The checkpoint a run kept at optimizer step ``step`` (``train.keep_checkpoint_steps``,
    or every periodic one at the paper scale)."""
    return Path(runs_dir) / run_id / "checkpoints" / f"step{step:08d}.ckpt"


STEP_FILE = re.compile(r"^step(\d+)(-v\d+)?\.ckpt$")


def kept_checkpoints(runs_dir: str | Path, run_id: str) -> list[tuple[int, Path]]:
    """(optimizer step, file) of every periodic checkpoint a run kept, in step order
    (empty when it kept none)."""
    found = []
    for path in (Path(runs_dir) / run_id / "checkpoints").glob("step*.ckpt"):
        match = STEP_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _upstream_checkpoint(config: RunConfig, upstream: RunConfig, runs_dir: Path) -> Path | None:
    """The file ``train.init_from: experiment/variant@n`` names (None: the last one), with
    an error naming the run and the remedy when it was not kept."""
    step = config.train.init_step
    if step is None:
        return None
    where = f"train.init_from: {config.train.init_from}"
    if step > upstream.train.steps:
        raise ConfigError(f"{where}: run {upstream.run_id} trains {upstream.train.steps} steps")
    path = kept_checkpoint(runs_dir, upstream.run_id, step)
    if not path.is_file():
        kept = sorted(p.name for p in path.parent.glob("step*.ckpt"))
        raise ConfigError(
            f"{where}: run {upstream.run_id} kept no checkpoint at step {step} ({path} is "
            f"missing; kept: {', '.join(kept) or 'none'}); add {step} to "
            f"train.keep_checkpoint_steps of {upstream.experiment}/{upstream.variant} and "
            "train that run again (the setting leaves its run id unchanged)"
        )
    return path


def _aside(path: Path) -> str:
    return f"move it aside (e.g. mv {path} {path}.bad) to start over from scratch"


def check_checkpoint(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a whole torch checkpoint.

    torch saves a zip archive whose directory is at its end, so an empty or truncated
    file is found by reading the directory, without loading the tensors."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); {_aside(path)}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or not a torch checkpoint "
            f"({err}); {_aside(path)}"
        ) from None
    if not any(name.endswith("data.pkl") for name in names):
        raise CheckpointError(
            f"checkpoint {path} is a zip archive but not a torch checkpoint; {_aside(path)}"
        )


def resume_checkpoint(folder: Path) -> tuple[Path | None, str | None]:
    """The checkpoint a run in ``folder`` resumes from: ``last.ckpt`` if it is whole, else
    the newest whole ``step<n>.ckpt`` (a damaged or missing ``last.ckpt`` never sends a
    run back to step 0 while intact periodic checkpoints are there). Returns (file or
    None to start from scratch, a note saying why a fallback was taken). Raises
    :class:`CheckpointError` when ``last.ckpt`` is damaged and no periodic one is whole."""
    last = folder / "last.ckpt"
    damage = None
    if last.exists():
        try:
            check_checkpoint(last)
            return last, None
        except CheckpointError as err:
            damage = err
    for step, path in reversed(kept_checkpoints(folder.parent.parent, folder.parent.name)):
        try:
            check_checkpoint(path)
        except CheckpointError as err:
            log.warning("skipping damaged periodic checkpoint: %s", err)
            continue
        what = str(damage).split("; move it aside")[0]
        why = f"{what}" if damage else f"there is no {last.name}"
        return path, f"{why}; resuming from {path.name} (step {step}), the newest whole one"
    if damage is not None:
        raise CheckpointError(f"{damage}; no whole periodic checkpoint to fall back on")
    return None, None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The contents of a torch checkpoint, read as data: tensors, numbers, strings and
    containers only (``weights_only``), so a file whose unpickling would run code is
    refused with :class:`CheckpointError` before anything of it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain data, which "
            f"are never unpickled (that could run code): {first}; {_aside(path)}"
        ) from None


def check_run_id(checkpoint: dict[str, Any], path: Path, run_id: str) -> None:
    """Raise :class:`CheckpointError` if the loaded ``checkpoint`` was saved by another run."""
    saved = checkpoint.get(RUN_ID_KEY)
    if saved is None:
        log.warning("checkpoint %s carries no run id (saved by an older version)", path)
    elif saved != run_id:
        raise CheckpointError(
            f"checkpoint {path} was saved by run {saved}, not by run {run_id} whose "
            f"directory it is in: it belongs to another config; {_aside(path)}"
        )


def load_trained_model(
    config: RunConfig,
    runs_dir: str | Path,
    device: torch.device | None = None,
    path: Path | None = None,
) -> tuple[torch.nn.Module, bool]:
    """The model of ``config`` with the weights of its last checkpoint, or of ``path`` (a
    kept periodic checkpoint of the same run), EMA weights when the run kept an EMA.
    Returns (model in eval mode, whether EMA weights were used)."""
    if config.model is None:
        raise ValueError(f"{config.experiment}/{config.variant} has no model")
    path = path or last_checkpoint(runs_dir, config.run_id)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint {path} for {config.experiment}/{config.variant} "
            f"(run id {config.run_id}); train it first: primebench sweep "
            f"{config.experiment} --variant {config.variant} --scale {config.scale}"
        )
    check_checkpoint(path)
    task = TASKS.get(config.task.name)(config.task.params, config)
    model = MODELS.get(config.model.name).build(config.model.params, task.data_spec())
    checkpoint = read_checkpoint(path)
    check_run_id(checkpoint, path, config.run_id)
    state = checkpoint["state_dict"]
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    )
    ema_state = {k[len("ema.") :]: v for k, v in state.items() if k.startswith("ema.")}
    if ema_state:
        ema = EMA(model, config.train.ema or 0.5)
        ema.load_state_dict(ema_state)
        ema.copy_to(model)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), bool(ema_state)


def initialise_from(
    model: torch.nn.Module,
    config: RunConfig,
    runs_dir: Path,
    tracker: Tracker,
    mlflow_run_id: str | None,
) -> dict[str, torch.Tensor] | None:
    """Fine-tuning: copy the network weights of ``train.init_from``'s trained run. Returns
    the weights the EMA starts from when they are not those: with ``train.ema_init:
    random``, a copy of ``model``'s parameters (by name) as they were before the load."""
    source = config.train.init_source
    if source is None:
        return None
    random_start = None
    if config.train.ema_init == "random":
        random_start = {n: p.detach().clone() for n, p in model.named_parameters()}
    experiment, variant = source
    try:
        upstream = resolve_variant(
            experiment,
            config.scale,
            parse_overrides(list(config.train.init_overrides)),
            variant,
            config.seed,
        )
    except (ConfigError, FileNotFoundError) as err:
        raise ConfigError(f"train.init_from: {config.train.init_from}: {err}") from None
    path = _upstream_checkpoint(config, upstream, runs_dir)
    trained, ema = load_trained_model(upstream, runs_dir, torch.device("cpu"), path)
    try:
        model.network.load_state_dict(trained.network.state_dict())
    except (AttributeError, RuntimeError) as err:
        raise ConfigError(
            f"train.init_from: the network of {config.train.init_from} (run "
            f"{upstream.run_id}) does not fit this model: {err}"
        ) from None
    name = (path or last_checkpoint(runs_dir, upstream.run_id)).name
    log.info(
        "initialised from %s (run %s, %s, ema=%s)",
        config.train.init_from,
        upstream.run_id,
        name,
        ema,
    )
    if mlflow_run_id is not None:
        tags = {"init_run": upstream.run_id, "init_checkpoint": name, "init_ema": str(ema)}
        tracker.set_tags(mlflow_run_id, {f"primebench.{k}": v for k, v in tags.items()})
    return random_start
