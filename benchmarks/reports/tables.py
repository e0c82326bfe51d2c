"""Table formats (Markdown, LaTeX) and the paper's numbers (``results/paper/*.csv``)."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import pandas as pd

from ..resources import paper_dir

__all__ = ["PAPER_DIR", "paper_table", "run_value", "markdown_table", "latex_table"]

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
    """A run's ``metrics.*`` column, or ``default`` where the run has none (pandas fills
    the missing columns of a mixed set of runs with NaN)."""
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
