"""``render_report``: every renderer of every task with complete runs at one scale.

Renderers are keyed by task name (or a tuple of task names whose runs they read
together); a third-party task adds its own with ``@renderer("my-task")`` in the module
that registers the task.

Reading the store runs nothing it names (:mod:`.stored`): a run's stored ``plugins`` are
never imported. The report imports only the user's own code: the installed packages'
entry points and the ``plugins:`` of this installation's experiment files. A run whose
task or model that leaves unregistered is not rendered; the index names it with the
plugin modules its config lists.

Runs that share a task, a variant and a seed but not a configuration (:mod:`.conflicts`)
get a row each, named by their run id and the settings they differ in; paired
comparisons that would have to choose between them say so, and the index lists them.

Everything is rendered into a staging directory inside the output directory first and
moved into place file by file (``os.replace``) at the end; then the files an earlier
report wrote there and this one did not are removed, and no file a report did not write
is replaced (:mod:`.output`). A report that fails half-way (a read-only directory, a bad
run, Ctrl-C) leaves the previous files as they were.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config.recipe import render_cards
from ..config.run_config import RunConfig
from ..core import ConfigError
from . import ell_nfe, fid_curve, idle_steps, images, text, text_dtype, text_nfe, toy2d
from .complete_runs import load_runs
from .conflicts import conflicts, differences
from .context import ReportContext
from .output import INDEX, RELEASED, index_title, install, staging
from .stored_config import stored_config

__all__ = ["RENDERERS", "renderer", "render_report"]

log = logging.getLogger("primebench")

Renderer = Callable[[ReportContext], None]

RENDERERS: dict[str | tuple[str, ...], list[Renderer]] = {
    "idle-steps": [idle_steps.table1_isr, idle_steps.figure1_counts, idle_steps.figure1],
    # Table 1 reads the trained runs; the sweeps read the runs of upstream checkpoints.
    "text-lm": [
        text.table1,
        text.table1_paired,
        text.table1_gen_ppl,
        text_nfe.text_nfe_sweep,
        text_dtype.sampling_dtype,
    ],
    "text-zero-shot": [text.table2],
    "image": [images.table3_paired, images.table3_nfe, images.sample_grid],
    # Tables 3 and 4 read the checkpoint evaluations beside the trained runs: table3's
    # ImageNet-32 rows at NFE 1024 are nfe-sweep's, nfe-sweep's NFE-512 cells ell-sweep's.
    ("image", "image-checkpoint"): [images.table3, ell_nfe.table4],
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
    weights: str = "trained",
) -> list[tuple[str, Path]]:
    """Write every table and figure for ``scale`` into ``results_dir/<scale>/`` (default:
    ``results/`` under the working directory, never the installed package), with an index
    ``index.md`` (the folder's ``README.md`` is left to people: the paper's numbers, the
    findings of a scale's runs) and, at the paper scale, the recipe cards ``recipes.md``; return
    (title, path) pairs. ``missing``: lines naming the runs that a
    reproduction could not complete, listed in the index.

    A run whose stored config no longer validates (written by an older version with
    settings since renamed), or names a task or model that is not registered here, is
    left out with a warning naming it, and listed under "Not rendered" in the index.

    ``weights="released"``: the runs that evaluated released weights instead, into
    ``results_dir/<scale>-released/``, with the file each run scored in the index.
    """
    import matplotlib

    matplotlib.use("Agg")
    folder = scale + (RELEASED if weights == "released" else "")
    out_dir = (Path.cwd() / "results" if results_dir is None else Path(results_dir)) / folder
    runs, client = load_runs(tracking_uri, scale)
    staged = staging(out_dir)
    try:
        written = _render_all(runs, client, folder, staged, missing)
        for name in install(staged, out_dir, folder):
            log.info("report: removed %s, written by an earlier report and not by this one", name)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return [(title, out_dir / path.name) for title, path in written]


def _tasks(key: str | tuple[str, ...]) -> tuple[str, ...]:
    """The tasks whose runs a renderer of ``key`` reads (a tuple: all of them together)."""
    return (key,) if isinstance(key, str) else key


def _order(cfg: RunConfig) -> tuple[str, str, int, str]:
    return cfg.task.name, cfg.variant, cfg.seed, cfg.run_id


def _render_all(
    runs: Any, client: Any, folder: str, out_dir: Path, missing: Sequence[str]
) -> list[tuple[str, Path]]:
    """Every renderer's files and the index, into ``out_dir`` (``folder``: the scale, or
    ``<scale>-released`` for the runs of released weights)."""
    written: list[tuple[str, Path]] = []
    configs, skipped = {}, []
    released = folder.endswith(RELEASED)
    scale = folder.removesuffix(RELEASED)
    for mlflow_run_id in runs.get("run_id", []):
        try:
            config = stored_config(client, mlflow_run_id)
        except ConfigError as err:
            log.warning("report: skipping a run: %s", err)
            skipped.append(str(err))
            continue
        if (config.weights is not None) == released:  # trained and released apart
            configs[mlflow_run_id] = config
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
    if folder == "paper":
        (out_dir / "recipes.md").write_text(render_cards("paper"))
        written.append(("Recipe cards: the source of every setting", out_dir / "recipes.md"))
    index = [index_title(folder), ""]
    if not written:
        index.append("No complete runs of this scale in the tracking store yet.")
    index += [f"- [{title}]({path.name})" for title, path in written]
    if missing:
        index += ["", "## Missing", "", "Runs of this reproduction that did not complete:", ""]
        index += [f"- {' '.join(line.split())}" for line in missing]
    index += _released_lines(configs) + _conflict_lines(configs) + _skipped_lines(skipped)
    (out_dir / INDEX).write_text("\n".join(index) + "\n")
    return written


def _released_lines(configs: Mapping[str, RunConfig]) -> list[str]:
    """The index's list of the released files the runs scored (their checksums and
    commits are tags of each MLflow run)."""
    released = sorted(
        (c.experiment, c.variant, c.weights.origin) for c in configs.values() if c.weights
    )
    if not released:
        return []
    lines = [
        "",
        "## Released weights",
        "",
        "No model here was trained by this suite: each run loaded the file below and ran the "
        "same evaluation as a trained run. The commit each revision resolved to and the "
        "file's sha256 are on the MLflow run (tags primebench.weights, weights.sha256) and "
        "on every metric's card.",
        "",
    ]
    return lines + [f"- {exp}/{variant}: {origin}" for exp, variant, origin in released]


def _conflict_lines(configs: Mapping[str, RunConfig]) -> list[str]:
    """The index's list of runs that share a task, variant and seed but not a config."""
    groups = conflicts(configs)
    if not groups:
        return []
    lines = [
        "",
        "## Runs of one variant and seed with different settings",
        "",
        "Each has its own row, named by its run id and the settings it differs in; a "
        "paired comparison that would have to choose one of them is not made.",
        "",
    ]
    for (task, variant, seed), ids in sorted(groups.items()):
        group = [configs[i] for i in ids]
        runs = "; ".join(
            f"run {c.run_id} (MLflow {i}): {d or 'the same settings'}"
            for i, c, d in zip(ids, group, differences(group), strict=True)
        )
        lines.append(f"- {task} / {variant}, seed {seed}: {' '.join(runs.split())}")
    return lines


def _skipped_lines(skipped: Sequence[str]) -> list[str]:
    """The index's list of stored runs left out, with the reason (one line each)."""
    if not skipped:
        return []
    lines = ["", "## Not rendered", "", "Complete runs of this scale left out of the tables:", ""]
    return lines + [f"- {' '.join(reason.split())}" for reason in skipped]
