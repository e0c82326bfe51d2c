"""What a renderer gets: the runs of its task, their typed configs, and where to write."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..config.run_config import RunConfig
from .conflicts import describe, twins
from .tables import latex_table, markdown_table, paper_table

__all__ = ["ReportContext"]


@dataclass
class ReportContext:
    """The complete runs of one task at one scale (``runs``, one row per run id, sorted
    by variant), their configs (``configs``: MLflow run id -> RunConfig), the store, and
    the output directory. Renderers append what they write to ``written``; artifacts they
    read are downloaded under ``scratch`` (the caller removes it; default: the system's
    temporary directory)."""

    scale: str
    out_dir: Path
    runs: pd.DataFrame
    client: Any
    configs: dict[str, RunConfig] = field(default_factory=dict)
    written: list[tuple[str, Path]] = field(default_factory=list)
    scratch: Path | None = None

    def rows(self) -> Iterable[tuple[pd.Series, RunConfig]]:
        """(row, config) of every run, in variant order."""
        for _, run in self.runs.iterrows():
            yield run, self.configs[run["run_id"]]

    def subset(self, keep: Callable[[RunConfig], bool]) -> ReportContext:
        """The runs whose config ``keep`` accepts, in the same order; what a renderer
        writes through it is listed in this context's ``written``."""
        ids = [r for r in self.runs["run_id"] if keep(self.configs[r])] if len(self.runs) else []
        runs = self.runs[self.runs["run_id"].isin(ids)] if ids else self.runs.iloc[0:0]
        configs = {r: self.configs[r] for r in ids}
        return replace(self, runs=runs.reset_index(drop=True), configs=configs)

    def run_name(self, cfg: RunConfig, name: str | None = None) -> str:
        """``name`` (default: the variant), with its seed when this variant has runs at
        several seeds here: one row per training seed, so the spread between them shows;
        and with its run id and the settings it differs in when another run here has its
        task, variant and seed (:mod:`.conflicts`): one row per run, never one for both."""
        name = name or cfg.variant
        seeds = {c.seed for c in self.configs.values() if c.variant == cfg.variant}
        marks = [f"seed {cfg.seed}"] if len(seeds) > 1 else []
        group = twins(self.configs, cfg)
        if len(group) > 1:
            marks.append(describe(cfg, group))
        return f"{name} ({'; '.join(marks)})" if marks else name

    def paper(self, name: str) -> pd.DataFrame:
        return paper_table(name)

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        """{step: value} of a metric logged with steps (last value per step)."""
        return {m.step: m.value for m in self.client.get_metric_history(run_id, key)}

    def download(self, run_id: str, artifact_path: str) -> Path:
        target = Path(tempfile.mkdtemp(prefix="primebench-artifact-", dir=self.scratch))
        return Path(self.client.download_artifacts(run_id, artifact_path, str(target)))

    def write_table(
        self, df: pd.DataFrame, name: str, title: str, notes: Iterable[str] = ()
    ) -> None:
        md = [f"## {title}", "", markdown_table(df), ""]
        md += [f"- {n}" for n in notes]
        (self.out_dir / f"{name}.md").write_text("\n".join(md).rstrip() + "\n")
        (self.out_dir / f"{name}.tex").write_text(latex_table(df, title))
        df.to_csv(self.out_dir / f"{name}.csv", index=False)
        self.written.append((title, self.out_dir / f"{name}.md"))

    def save_panels(self, panels: list[tuple[str, Any]], name: str) -> None:
        """One row of images with their titles: (H, W) arrays in grey, (H, W, 3) in colour."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
        for ax, (title, image) in zip(axes[0], panels, strict=True):
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        self.save_figure(fig, name)

    def save_figure(self, fig: Any, name: str) -> None:
        import matplotlib.pyplot as plt

        path = self.out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=150)
        plt.close(fig)
        self.written.append((name, path))
