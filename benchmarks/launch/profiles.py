"""Cluster profiles (``slurm/<name>.yaml``): the resources of every job of a sweep.

A profile asks for ``nodes`` nodes with ``gpus_per_node`` GPUs each and starts one
process (rank) per GPU, so that data parallelism sees a world size of
``nodes * gpus_per_node``. Without GPUs, ``ranks_per_node`` CPU processes per node
train with the gloo backend (tests, laptops). A job that Slurm warns of its time limit
or preempts saves a checkpoint and requeues itself, at most ``max_requeues`` times for
time-outs; the warning comes ``signal_delay_s`` seconds before the limit.

On Slurm each kind of job has its own profile (:mod:`benchmarks.launch.job_profiles`):
``--profile`` for training jobs; ``--eval-profile`` for evaluation-only jobs (released
weights, an upstream run's checkpoints), by default ``gpu-1x`` (one GPU) when
``--profile`` holds GPUs; ``--cpu-profile`` for jobs whose task needs no device (the
idle-steps simulation), by default ``cpu``, and never a profile with GPUs.
With a ``--profile`` without GPUs both default to it; local jobs all use ``--profile``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config.validation import build_dataclass
from ..config.yaml_io import load_yaml, yaml_problem
from ..core import ConfigError, require_at_least
from ..resources import profiles_dir

__all__ = [
    "ClusterProfile",
    "load_profile",
    "list_profiles",
    "check_slurm_can_run",
    "partition_nodes",
]


@dataclass(frozen=True)
class ClusterProfile:
    """Resources of every job of a sweep; see the module docstring."""

    partition: str | None = None
    """Slurm partition of the jobs; null: the cluster's default partition."""
    nodes: int = 1
    """Nodes per job; local jobs need 1."""
    gpus_per_node: int = 0
    """GPUs per node, one rank each; 0: CPU ranks (gloo backend)."""
    ranks_per_node: int | None = None
    """CPU ranks per node, set only without GPUs; null: one per GPU, or 1 without GPUs."""
    cpus_per_task: int = 2
    """CPU cores per rank."""
    mem_gb: int = 8
    """Memory per node, in GB."""
    timeout_min: int = 60
    """Time limit of one job allocation, in minutes; a longer run requeues itself."""
    signal_delay_s: int = 120
    """Seconds before the time limit at which Slurm warns the job, which then saves a
    checkpoint and requeues (local jobs are warned 30 s before, not settable)."""
    max_requeues: int = 10
    """Time-outs after which a job is given up instead of requeued (preemptions do not
    count)."""
    account: str | None = None
    """Slurm account the jobs are charged to; null: the user's default."""
    qos: str | None = None
    """Slurm quality of service; null: the default."""
    constraint: str | None = None
    """Slurm node constraint (node features, e.g. a GPU type); null: none."""
    array_parallelism: int = 16
    """Jobs of a sweep's Slurm array that may run at the same time."""
    setup: tuple[str, ...] = ()
    """Shell lines run first in each Slurm job (modules, venv, ...)."""

    def __post_init__(self) -> None:
        require_at_least(
            self,
            "profile",
            ("nodes", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism"),
        )
        require_at_least(self, "profile", ("gpus_per_node", "max_requeues"), minimum=0)
        require_at_least(self, "profile", ("signal_delay_s",), minimum=10)
        if self.ranks_per_node is not None:
            if self.ranks_per_node < 1:
                raise ConfigError(
                    f"profile.ranks_per_node: must be >= 1, got {self.ranks_per_node}"
                )
            if self.gpus_per_node and self.ranks_per_node != self.gpus_per_node:
                raise ConfigError(
                    f"profile.ranks_per_node: with GPUs there is one rank per GPU; expected "
                    f"{self.gpus_per_node} (gpus_per_node) or null, got {self.ranks_per_node}"
                )
        if self.signal_delay_s >= self.timeout_min * 60:
            raise ConfigError(
                f"profile.signal_delay_s: the warning must come before the time limit; "
                f"expected < {self.timeout_min * 60} (timeout_min * 60), got {self.signal_delay_s}"
            )

    @property
    def tasks_per_node(self) -> int:
        """Processes per node: one per GPU, or ``ranks_per_node`` CPU processes."""
        return self.gpus_per_node or self.ranks_per_node or 1

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node

    def executor_parameters(self, cluster: str) -> dict[str, Any]:
        """submitit parameters for ``cluster`` ("slurm" or "local")."""
        if cluster == "local":
            if self.nodes != 1:
                raise ConfigError(
                    f"profile.nodes: local jobs run on this machine; expected 1, got {self.nodes}"
                )
            # submitit's local executor warns 30 s before its time limit (not settable).
            return {"timeout_min": self.timeout_min, "tasks_per_node": self.tasks_per_node}
        params: dict[str, Any] = {
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
            "slurm_signal_delay_s": self.signal_delay_s,
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


def list_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def load_profile(name_or_path: str) -> ClusterProfile:
    """A cluster profile by name (``slurm/<name>.yaml``) or path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown cluster profile {name_or_path!r}; valid: {', '.join(list_profiles())}"
        )
    try:
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"profile {path.name}: not valid YAML: {yaml_problem(err)}") from None
    return build_dataclass(ClusterProfile, raw, f"profile {path.name}")


def partition_nodes(sinfo_output: str, partition: str | None) -> int:
    """Nodes of ``partition`` (the default one, marked ``*``, when None) in the output of
    ``sinfo -h -o "%D %P"``; lines of one partition (e.g. by node state) are added up."""
    counts: dict[str, int] = {}
    default = None
    for line in sinfo_output.splitlines():
        count, _, name = line.strip().partition(" ")
        if not count.isdigit() or not name:
            continue
        if name.endswith("*"):
            default = name = name.rstrip("*")
        counts[name] = counts.get(name, 0) + int(count)
    wanted = default if partition is None else partition
    if wanted not in counts:
        raise ConfigError(
            f"profile.partition: {partition!r} is not a partition of this cluster; "
            f"sinfo lists {', '.join(sorted(counts)) or 'none'}"
        )
    return counts[wanted]


def _partition_nodes(partition: str | None) -> int | None:
    """Nodes of ``partition`` on this cluster, None if sinfo cannot tell."""
    cmd = ["sinfo", "-h", "-o", "%D %P"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return partition_nodes(out, partition)


def check_slurm_can_run(profile: ClusterProfile, require_sbatch: bool = True) -> None:
    """Raise ConfigError before submission if this machine cannot submit the profile
    (``require_sbatch=False``: only what can be checked without sbatch, for dry runs)."""
    if require_sbatch and shutil.which("sbatch") is None:
        raise ConfigError(
            "--cluster slurm: sbatch is not on PATH; run on a Slurm login node "
            "(or start the one-node cluster with slurm/cluster-up.sh)"
        )
    nodes = _partition_nodes(profile.partition)
    if nodes is not None and profile.nodes > nodes:
        where = profile.partition or "the default partition"
        raise ConfigError(
            f"profile.nodes: {where} has {nodes} node(s); expected <= {nodes}, got {profile.nodes}"
        )
