"""What the report tests share: an in-memory stand-in for the MLflow client (the parts a
report reads: the runs table, each run's stored ``config.json`` and artifacts) and a
probe task whose renderer writes one table per name it lists, so that each render takes
a fraction of a second."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.core import Task
from benchmarks.registry import MODELS, TASKS
from benchmarks.reports import render
from benchmarks.reports.context import ReportContext

PROBE = "report-probe"


@dataclass(frozen=True)
class ProbeParams:
    tables: tuple[str, ...] = ()


class Probe(Task):
    """A task whose renderer writes one table per name in ``tables`` (one row per run)."""

    Params = ProbeParams
    trainable = False
    needs_model = False


def probe_tables(ctx: ReportContext) -> None:
    names = sorted({n for _, cfg in ctx.rows() for n in cfg.task.params.tables})
    for name in names:
        rows = [ctx.run_name(cfg) for _, cfg in ctx.rows() if name in cfg.task.params.tables]
        ctx.write_table(pd.DataFrame({"run": rows}), name, f"probe {name}")


class Store:
    """Complete runs: a stored config.json, last metric values and artifacts each."""

    def __init__(self, root: Path):
        self.root, self.rows, self.files = root, [], {}

    def add(self, config: dict, metrics: dict | None = None, **artifacts: dict) -> str:
        run_id = f"mlflow{len(self.rows):02d}"
        self.files[run_id, "config.json"] = json.dumps(config).encode()
        for name, arrays in artifacts.items():
            path = self.root / f"{run_id}-{name}.npz"
            np.savez(path, **arrays)
            self.files[run_id, f"likelihood/{name}.npz"] = path.read_bytes()
        row = {"run_id": run_id, "tags.primebench.run_id": run_id}
        self.rows.append({**row, **{f"metrics.{k}": v for k, v in (metrics or {}).items()}})
        return run_id

    def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
        target = Path(dst) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[run_id, path])  # KeyError: no such artifact
        return str(target)


def probe_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A store that ``render_report`` reads, the probe task registered beside the
    installed ones (both registries restored when ``monkeypatch`` undoes)."""
    for registry in (TASKS, MODELS):
        registry.discover()
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    TASKS.register(PROBE)(Probe)
    monkeypatch.setitem(render.RENDERERS, PROBE, [probe_tables])
    runs = Store(tmp_path)
    monkeypatch.setattr(render, "load_runs", lambda uri, scale: (pd.DataFrame(runs.rows), runs))
    return runs


def probe(variant: str, *tables: str, seed: int = 0, **extra) -> dict:
    """A stored run config of the probe task writing ``tables``."""
    task = {"name": PROBE, "tables": list(tables)}
    return {"experiment": "probe", "variant": variant, "scale": "cpu", "seed": seed,
            "task": task, "model": None, **extra}  # fmt: skip


def report(tmp_path: Path) -> Path:
    """Render the ``cpu`` report of the patched store; the folder it wrote."""
    render.render_report(None, "cpu", results_dir=tmp_path / "results")
    return tmp_path / "results" / "cpu"
