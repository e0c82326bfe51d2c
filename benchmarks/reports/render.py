"""``render_report``: every renderer of every task with complete runs at one scale.

Renderers are keyed by task name (or a tuple of task names whose runs they read
together); a third-party task adds its own with ``@renderer("my-task")`` in the module
that registers the task.

Everything is rendered into a staging directory inside the output directory first and
moved into place file by file (``os.replace``) at the end: a report that fails half-way
(a read-only directory, a bad run, Ctrl-C) leaves the previous files as they were.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..core import ConfigError
from ..recipe import render_cards
from . import fid_curve, idle_steps, images, text, toy2d
from .context import ReportContext, stored_config
from .store import load_runs

__all__ = ["RENDERERS", "ReportError", "renderer", "render_report"]

log = logging.getLogger("primebench")

Renderer = Callable[[ReportContext], None]

RENDERERS: dict[str | tuple[str, ...], list[Renderer]] = {
    "idle-steps": [idle_steps.table1_isr, idle_steps.figure1_counts, idle_steps.figure1],
    "text-lm": [text.table1, text.table1_paired],
    "text-zero-shot": [text.table2],
    "image": [images.table3_paired, images.table3_nfe, images.sample_grid],
    # Tables 3 and 4 read the checkpoint evaluations beside the trained runs: table3's
    # ImageNet-32 rows at NFE 1024 are nfe-sweep's, nfe-sweep's NFE-512 cells ell-sweep's.
    ("image", "image-checkpoint"): [images.table3, images.table4],
    # The curves read their trained rows' own FID beside them.
    ("image", "image-checkpoint", "image-fid-curve"): [fid_curve.fid_curves],
    "toy2d": [
        toy2d.figure4_table,
        toy2d.figure4_paired,
        toy2d.figure4_samples,
        toy2d.figure4_steps_table,
        toy2d.figure4_steps,
    ],
}


class ReportError(RuntimeError):
    """The report cannot be written where it was asked to go."""


def _staging(out_dir: Path) -> Path:
    """A new directory inside ``out_dir`` (made if need be), or :class:`ReportError`."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".render-", dir=out_dir))
    except OSError as err:
        raise ReportError(
            f"results directory {out_dir}: cannot write there ({err.strerror}); choose "
            "another with --out"
        ) from None


def renderer(task: str) -> Callable[[Renderer], Renderer]:
    """Register a renderer of ``task``'s runs (one table or figure)."""

    def decorator(fn: Renderer) -> Renderer:
        RENDERERS.setdefault(task, []).append(fn)
        return fn

    return decorator


def render_report(
    tracking_uri: str | None = None,
    scale: str = "cpu",
    results_dir: str | Path | None = None,
    missing: Sequence[str] = (),
) -> list[tuple[str, Path]]:
    """Write every table and figure for ``scale`` into ``results_dir/<scale>/`` (default:
    ``results/`` under the working directory, never the installed package), with an index
    ``README.md`` (``index.md`` at the paper scale, whose folder holds the paper's numbers
    and their README) and, at the paper scale, the recipe cards ``recipes.md``; return
    (title, path) pairs. ``missing``: lines naming the runs that a
    reproduction could not complete, listed in the index.

    A run whose stored config no longer validates (written by an older version with
    settings since renamed) is left out with a warning naming it.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = (Path.cwd() / "results" if results_dir is None else Path(results_dir)) / scale
    runs, client = load_runs(tracking_uri, scale)
    staging = _staging(out_dir)
    try:
        written = _render_all(runs, client, scale, staging, missing)
        for entry in sorted(staging.iterdir()):
            os.replace(entry, out_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [(title, out_dir / path.name) for title, path in written]


def _tasks(key: str | tuple[str, ...]) -> tuple[str, ...]:
    """The tasks whose runs a renderer of ``key`` reads (a tuple: all of them together)."""
    return (key,) if isinstance(key, str) else key


def _order(cfg: RunConfig) -> tuple[str, str, int]:
    return cfg.task.name, cfg.variant, cfg.seed


def _render_all(
    runs: Any, client: Any, scale: str, out_dir: Path, missing: Sequence[str]
) -> list[tuple[str, Path]]:
    """Every renderer's files and the index, into ``out_dir``."""
    written: list[tuple[str, Path]] = []
    configs = {}
    for mlflow_run_id in runs.get("run_id", []):
        try:
            configs[mlflow_run_id] = stored_config(client, mlflow_run_id)
        except ConfigError as err:
            log.warning("report: skipping a run: %s", err)
    # Grouped by the task and ordered by the variant, then the seed, of each stored config.
    order = sorted(configs, key=lambda r: _order(configs[r]))
    with tempfile.TemporaryDirectory(prefix="primebench-report-") as scratch:
        present = {c.task.name for c in configs.values()}
        for key in sorted(RENDERERS, key=_tasks):
            if not present & set(_tasks(key)):
                continue
            ids = [r for r in order if configs[r].task.name in _tasks(key)]
            group = runs.set_index("run_id").loc[ids].reset_index()
            chosen = {r: configs[r] for r in ids}
            ctx = ReportContext(scale, out_dir, group, client, chosen, scratch=Path(scratch))
            for render in RENDERERS[key]:
                render(ctx)
            written += ctx.written
    if scale == "paper":
        (out_dir / "recipes.md").write_text(render_cards("paper"))
        written.append(("Recipe cards: the source of every setting", out_dir / "recipes.md"))
    index = [f"# primebench results, scale `{scale}`", ""]
    if not written:
        index.append("No complete runs of this scale in the tracking store yet.")
    index += [f"- [{title}]({path.name})" for title, path in written]
    if missing:
        index += ["", "## Missing", "", "Runs of this reproduction that did not complete:", ""]
        index += [f"- {' '.join(line.split())}" for line in missing]
    # results/paper/README.md documents the paper's numbers beside it: the paper scale's
    # index is index.md.
    name = "index.md" if scale == "paper" else "README.md"
    (out_dir / name).write_text("\n".join(index) + "\n")
    return written
