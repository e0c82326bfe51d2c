"""Launch run configs with submitit: ``debug`` (in-process), ``local`` (processes on this
machine), or ``slurm`` (a job array with a cluster profile from ``slurm/<profile>.yaml``).

Every job calls :func:`benchmarks.runner.execute`, which is idempotent: a sweep submitted
twice re-runs nothing that finished and resumes what did not.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, RunConfig, build_dataclass, require_at_least
from .runner import execute
from .tracking import Tracker, resolve_tracking_uri

__all__ = ["CLUSTERS", "SlurmProfile", "load_profile", "launch", "LaunchError", "PROFILES_DIR"]

log = logging.getLogger("primebench")

CLUSTERS = ("debug", "local", "slurm")
PROFILES_DIR = Path(__file__).resolve().parent.parent / "slurm"


class LaunchError(RuntimeError):
    """One or more jobs of a sweep failed."""


@dataclass(frozen=True)
class SlurmProfile:
    """Resources of every array task of a sweep (``slurm/<name>.yaml``)."""

    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 8
    timeout_min: int = 60
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 16
    setup: tuple[str, ...] = ()  # shell lines run first in each job (modules, venv, ...)

    def __post_init__(self) -> None:
        require_at_least(
            self, "profile", ("cpus_per_task", "mem_gb", "timeout_min", "array_parallelism")
        )
        if self.gpus_per_node < 0:
            raise ConfigError(f"profile.gpus_per_node: must be >= 0, got {self.gpus_per_node}")

    def executor_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
            "slurm_array_parallelism": self.array_parallelism,
        }
        optional = {
            "slurm_partition": self.partition,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
            "slurm_constraint": self.constraint,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.setup:
            params["slurm_setup"] = list(self.setup)
        return params


def _say(message: str) -> None:
    print(message, flush=True)


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> SlurmProfile:
    """A cluster profile by name (``slurm/<name>.yaml``) or path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown cluster profile {name_or_path!r}; valid: {', '.join(list_profiles())}"
        )
    raw = yaml.safe_load(path.read_text()) or {}
    return build_dataclass(SlurmProfile, raw, f"profile {path.name}")


def _executor(cluster: str, folder: Path, profile: SlurmProfile | None) -> Any:
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    if cluster == "slurm":
        executor.update_parameters(**(profile or SlurmProfile()).executor_parameters())
    elif cluster == "local":
        executor.update_parameters(timeout_min=(profile.timeout_min if profile else 24 * 60))
    return executor


def launch(
    configs: list[RunConfig],
    cluster: str = "local",
    *,
    profile: SlurmProfile | None = None,
    tracking_uri: str | None = None,
    runs_dir: str | Path = "runs",
    parallel: int = 1,
) -> list[dict[str, Any]]:
    """Run ``configs`` on ``cluster`` and wait for them; returns each job's result.

    ``parallel`` (local only) caps simultaneous processes; the machine's cores are split
    between them. A Slurm sweep is one job array limited by ``profile.array_parallelism``.
    Raises :class:`LaunchError` naming the failed configs and their logs.
    """
    if cluster not in CLUSTERS:
        raise ConfigError(f"--cluster: expected one of {', '.join(CLUSTERS)}, got {cluster!r}")
    if parallel < 1:
        raise ConfigError(f"--parallel: must be >= 1, got {parallel}")
    uri = resolve_tracking_uri(tracking_uri)
    # Fails fast on an unreachable store, and creates the store's tables and the MLflow
    # experiments here, once, rather than in concurrent jobs racing on a sqlite file.
    tracker = Tracker(uri)
    for name in sorted({c.experiment for c in configs}):
        tracker.experiment_id(name)
    runs_dir = Path(runs_dir).resolve()
    folder = runs_dir / "submitit" / cluster
    folder.mkdir(parents=True, exist_ok=True)
    executor = _executor(cluster, folder, profile)
    payloads = [c.to_dict() for c in configs]

    total = len(payloads)
    if cluster == "local":
        os.environ["PRIMEBENCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
        jobs = []
        for start in range(0, total, parallel):
            wave = payloads[start : start + parallel]
            n = len(wave)
            wave_jobs = executor.map_array(execute, wave, [uri] * n, [str(runs_dir)] * n)
            for offset, (config, job) in enumerate(
                zip(configs[start : start + n], wave_jobs, strict=True)
            ):
                _say(
                    f"[{start + offset + 1}/{total}] {config.variant} ({config.run_id}) "
                    f"running, log: {job.paths.stderr}"
                )
            began = time.perf_counter()
            for job in wave_jobs:
                job.wait()
            _say(f"    finished in {time.perf_counter() - began:.0f} s")
            jobs += wave_jobs
    else:
        jobs = executor.map_array(execute, payloads, [uri] * total, [str(runs_dir)] * total)
        if cluster == "slurm":
            _say(
                f"submitted job array {jobs[0].job_id.split('_')[0]} ({total} tasks); "
                f"logs under {folder}"
            )
    results, failures = [], []
    for config, job in zip(configs, jobs, strict=True):
        try:
            results.append(job.result())
            if cluster == "slurm":
                _say(f"    {config.variant} ({config.run_id}) done")
        except Exception as err:  # noqa: BLE001 - collected and reported together
            where = f" (log: {job.paths.stderr})" if cluster != "debug" else ""
            failures.append(f"{config.variant} [{config.run_id}]: {err}{where}")
    if failures:
        raise LaunchError("failed runs:\n  " + "\n  ".join(failures))
    return results
