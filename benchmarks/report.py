"""Reports: MLflow runs -> pandas -> Markdown / LaTeX tables and matplotlib figures.

``render_report`` collects the complete runs of one scale from every ``primebench/*``
MLflow experiment, groups them by task, and lets each task render its tables and
figures into ``results/<scale>/`` (under the working directory, or ``results_dir``) next
to the paper's numbers (``results/paper/*.csv``, see :func:`benchmarks.resources.paper_dir`).
An index ``results/<scale>/README.md`` lists what was written. Nothing here needs the
network: local stores are read directly, servers over HTTP.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from .registry import TASKS
from .resources import paper_dir
from .tracking import COMPLETE_TAG, EXPERIMENT_PREFIX, resolve_tracking_uri

__all__ = [
    "ReportContext",
    "load_runs",
    "render_report",
    "PAPER_DIR",
    "paper_table",
    "run_value",
    "markdown_table",
    "latex_table",
]

PAPER_DIR = paper_dir()  # read-only; reports go to results_dir (default ./results)


@cache
def paper_table(name: str) -> pd.DataFrame:
    """The paper's numbers, ``results/paper/<name>.csv`` (``#`` lines are comments)."""
    path = PAPER_DIR / f"{name}.csv"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in PAPER_DIR.glob("*.csv")))
        raise FileNotFoundError(f"no paper table {path}; available: {valid}")
    return pd.read_csv(path, comment="#")


def run_value(run: pd.Series, key: str, default: Any = None) -> Any:
    """A run's ``params.*`` / ``metrics.*`` column, or ``default`` where the run has none
    (pandas fills missing columns of a mixed set of runs with NaN)."""
    value = run.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("≤", r"$\le$"),
    ):
        text = text.replace(a, b)
    return text


def latex_table(df: pd.DataFrame, caption: str) -> str:
    cols = "l" * len(df.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_latex_escape(caption)}}}",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(_latex_escape(_cell(v)) for v in row) + r" \\"
        for row in df.itertuples(index=False)
    ]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


@dataclass
class ReportContext:
    """What a task's ``report`` gets: its runs, the store, and where to write."""

    scale: str
    out_dir: Path
    runs: pd.DataFrame
    client: Any
    written: list[tuple[str, Path]] = field(default_factory=list)

    def paper(self, name: str) -> pd.DataFrame:
        return paper_table(name)

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        """{step: value} of a metric logged with steps (last value per step)."""
        return {m.step: m.value for m in self.client.get_metric_history(run_id, key)}

    def download(self, run_id: str, artifact_path: str) -> Path:
        target = Path(tempfile.mkdtemp(prefix="primebench-artifact-"))
        return Path(self.client.download_artifacts(run_id, artifact_path, str(target)))

    def write_table(
        self, df: pd.DataFrame, name: str, title: str, notes: Iterable[str] = ()
    ) -> None:
        notes = list(notes)
        md = [f"## {title}", "", markdown_table(df), ""]
        md += [f"- {n}" for n in notes]
        (self.out_dir / f"{name}.md").write_text("\n".join(md).rstrip() + "\n")
        (self.out_dir / f"{name}.tex").write_text(latex_table(df, title))
        df.to_csv(self.out_dir / f"{name}.csv", index=False)
        self.written.append((title, self.out_dir / f"{name}.md"))

    def save_figure(self, fig: Any, name: str) -> None:
        import matplotlib.pyplot as plt

        path = self.out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=150)
        plt.close(fig)
        self.written.append((name, path))


def load_runs(tracking_uri: str | None, scale: str) -> tuple[pd.DataFrame, Any]:
    """All complete primebench runs of ``scale`` as one DataFrame (and the client).

    Columns: ``run_id`` (MLflow), ``params.*``, ``metrics.*`` (last values), ``tags.*``.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
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
    # One row per config: the newest MLflow run of each run id.
    runs = runs.sort_values("start_time").groupby("tags.primebench.run_id").tail(1)
    return runs.reset_index(drop=True), client


def render_report(
    tracking_uri: str | None = None, scale: str = "cpu", results_dir: str | Path | None = None
) -> list[tuple[str, Path]]:
    """Write every task's tables and figures for ``scale`` into ``results_dir/<scale>/``
    (default: ``results/`` under the working directory, never the installed package);
    return (title, path) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = (Path.cwd() / "results" if results_dir is None else Path(results_dir)) / scale
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, client = load_runs(tracking_uri, scale)
    written: list[tuple[str, Path]] = []
    if not runs.empty:
        for task_name, group in runs.groupby("tags.primebench.task"):
            if task_name not in TASKS:
                continue
            ctx = ReportContext(scale, out_dir, group.reset_index(drop=True), client)
            TASKS.get(task_name).report(ctx)
            written += ctx.written
    index = [f"# primebench results, scale `{scale}`", ""]
    if not written:
        index.append("No complete runs of this scale in the tracking store yet.")
    index += [f"- [{title}]({path.name})" for title, path in written]
    (out_dir / "README.md").write_text("\n".join(index) + "\n")
    return written
