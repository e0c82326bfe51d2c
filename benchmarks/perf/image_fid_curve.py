"""FID of a trained image run against its training steps and sampler settings: where an
image budget pays, in more steps or in the sampler.

Reads the checkpoints one run kept (``--set train.keep_checkpoints=true`` when it was
trained keeps ``step<n>.ckpt`` beside ``last.ckpt``; without them, ``last.ckpt`` alone),
draws ``task.sample_count`` images from the EMA weights of each with each sampler
setting, and prints FID +- its half-sample SE, KID and FID / real-data floor, all at the
same N against the same reference features as the run's own evaluation. Every row
starts the same seeded sampling stream, so rows differ by the weights and the setting,
not by the noise. A setting is a JSON mapping of image-task settings (``temperature``,
``corrector``, ``time_warp``, ``sampler_carry_over``, ``proposal``, ``steps``); ``{}``
is the experiment's own.

    python -m benchmarks.perf.image_fid_curve image-cpu mdm --runs-dir runs \\
        --set train.steps=6000 --sampler '{}' --sampler '{"temperature": [0, 1, 0.8]}'
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.config.experiments import resolve_variant
from benchmarks.config.overrides import parse_overrides
from benchmarks.config.run_config import RunConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError, EvalContext
from benchmarks.data.cache import default_cache_dir
from benchmarks.metrics.fid import InceptionFeatures
from benchmarks.registry import TASKS
from benchmarks.tasks.image_params import HELD_OUT_SPLIT, REFERENCE_SPLIT, ImageParams
from benchmarks.tasks.image_splits import load_images
from benchmarks.tasks.images import ImageGeneration
from benchmarks.training.checkpoints import kept_checkpoints, last_checkpoint, load_trained_model


def curve_checkpoints(runs_dir: Path, run_id: str) -> list[tuple[int | None, Path]]:
    """(training step, file) of every kept periodic checkpoint of a run, in step order;
    ``last.ckpt`` alone (step None) when the run kept none."""
    found: list[tuple[int | None, Path]] = list(kept_checkpoints(runs_dir, run_id))
    if found:
        return found
    last = last_checkpoint(runs_dir, run_id)
    if not last.is_file():
        raise FileNotFoundError(f"{last.parent}: no checkpoint of run {run_id}; train it first")
    return [(None, last)]


def sampler_settings(raw: list[str], base: ImageParams) -> list[tuple[str, ImageParams, int]]:
    """(label, task settings, sampler steps) of every ``--sampler`` JSON mapping."""
    out = []
    for text in raw or ["{}"]:
        try:
            setting = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--sampler {text!r}: not JSON ({err})") from None
        if not isinstance(setting, dict):
            raise ConfigError(f"--sampler {text!r}: expected a JSON mapping of task settings")
        if "steps" in setting:  # the short name of the sampler's N
            setting["sample_steps"] = setting.pop("steps")
        values = {**dataclasses.asdict(base), **setting}
        params = build_dataclass(ImageParams, values, f"--sampler {text}")
        out.append((text, params, params.sample_steps))
    return out


def score_row(
    task: ImageGeneration,
    model: torch.nn.Module,
    ctx: EvalContext,
    steps: int,
    reference: np.ndarray,
    extractor: Any,
) -> dict[str, float]:
    """FID, its SE and KID of ``task.sample_count`` samples at ``steps`` sampler steps."""
    images, _ = task.sample_images(model, ctx, steps)
    metrics = task.score_images(images, reference, [("", extractor)], ctx)
    return {m.name: m.value for m in metrics if m.name in ("fid", "fid_se", "kid")}


def real_data_floor(
    task: ImageGeneration,
    held_out: np.ndarray,
    reference: np.ndarray,
    extractor: Any,
    ctx: EvalContext,
) -> float:
    """FID of sample_count held-out real images against the reference (the best N
    samples can score); NaN, with the reason printed, when the split is too small."""
    try:
        real = task.floor_images(held_out, len(reference))
    except ConfigError as err:
        print(f"real-data floor: unavailable ({err})")
        return float("nan")
    floor = task.score_images(real, reference, [("", extractor)], ctx, "_real_floor")
    value = next(m.value for m in floor if m.name == "fid_real_floor")
    print(f"real-data floor (N = {len(real)}): FID {value:.2f}")
    return value


def fid_curve(
    config: RunConfig, runs_dir: Path, raw_settings: list[str], only_steps: set[int] | None
) -> list[dict[str, Any]]:
    """One row per (kept checkpoint, sampler setting) of the run of ``config`` under
    ``runs_dir``: training step, setting, sampler steps, FID, its SE, KID, the real-data
    floor and FID / floor, seconds; ``only_steps`` (non-empty) keeps those steps only."""
    base = config.task.params
    if not isinstance(base, ImageParams):
        raise ConfigError(f"{config.experiment}: task {config.task.name!r} is not an image task")
    settings = sampler_settings(raw_settings, base)
    checkpoints = curve_checkpoints(runs_dir, config.run_id)
    if only_steps:
        checkpoints = [(s, p) for s, p in checkpoints if s in only_steps]
        if not checkpoints:
            raise ConfigError(f"--at: the run kept no checkpoint at steps {sorted(only_steps)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = TASKS.get(config.task.name)(base, config)
    reference = np.asarray(
        load_images(
            base.dataset,
            REFERENCE_SPLIT[base.dataset],
            task.split_copy(REFERENCE_SPLIT[base.dataset]),
        )[: base.reference_count]
    )
    held_out = load_images(
        base.dataset, HELD_OUT_SPLIT[base.dataset], task.split_copy(HELD_OUT_SPLIT[base.dataset])
    )
    extractor = InceptionFeatures(default_cache_dir(), device, precision=base.fid_precision)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EvalContext(device, config.seed, Path(tmp), True)
        floor_fid = real_data_floor(task, held_out, reference, extractor, ctx)
        rows = []
        for step, path in checkpoints:
            model, ema = load_trained_model(config, runs_dir, device, path=path)
            ctx = EvalContext(device, config.seed, Path(tmp), ema)
            for label, params, steps in settings:
                start = time.perf_counter()
                scores = score_row(
                    TASKS.get(config.task.name)(params, config),
                    model,
                    ctx,
                    steps,
                    reference,
                    extractor,
                )
                row = {
                    "train_step": step if step is not None else "last",
                    "sampler": label,
                    "steps": steps,
                    **scores,
                    "floor": floor_fid,
                    "fid_over_floor": scores["fid"] / floor_fid,
                    "seconds": time.perf_counter() - start,
                }
                print(
                    f"step {row['train_step']:>6}  {label:<60} {steps:>4} steps  FID "
                    f"{scores['fid']:7.2f} +- {scores['fid_se']:.2f}  KID x 1e3 "
                    f"{1e3 * scores['kid']:6.2f}  {row['fid_over_floor']:.2f}x floor  "
                    f"({row['seconds']:.0f} s)",
                    flush=True,
                )
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("variant")
    parser.add_argument("--runs-dir", default="runs", type=Path)
    parser.add_argument("--scale", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--seed", type=int, default=0, help="training seed of the run")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the overrides the run was trained with (they fix its run id)",
    )
    parser.add_argument(
        "--sampler",
        action="append",
        default=[],
        metavar="JSON",
        help="task settings of one sampler (repeatable); default: '{}'",
    )
    parser.add_argument(
        "--at",
        type=int,
        action="append",
        metavar="STEP",
        help="only the checkpoints of these training steps (repeatable)",
    )
    parser.add_argument("--csv", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    config = resolve_variant(
        args.experiment, args.scale, parse_overrides(args.set), args.variant, args.seed
    )
    rows = fid_curve(config, args.runs_dir, args.sampler, set(args.at or []))
    if args.csv:
        with args.csv.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
