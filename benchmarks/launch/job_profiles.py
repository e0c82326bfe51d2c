"""The cluster profile of each job of a Slurm submission: one per kind of job.

A plan's jobs are of three kinds (:mod:`benchmarks.launch.job_kinds`), and each kind has its
own profile, named by its own flag:

==========  ==============  ==============================================================
kind        flag            default
==========  ==============  ==============================================================
training    --profile       none: required with --cluster slurm
evaluation  --eval-profile  gpu-1x (one GPU per job) when the --profile holds GPUs, else
                            the --profile
cpu         --cpu-profile   cpu when the --profile holds GPUs, else the --profile
==========  ==============  ==============================================================

A cpu job never holds a GPU: a ``--cpu-profile`` with GPUs is an error. A submission
sends the jobs of one experiment that get different profiles as one array per profile;
an experiment's arrays all wait for every array of its upstream experiments (``afterok``),
as one array did. With ``--cluster local`` or ``debug`` every job runs with ``--profile``
(a local job holds no allocation), and the other two flags are errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ..config.run_config import RunConfig
from ..core import ConfigError
from .job_kinds import job_kind
from .profiles import ClusterProfile, load_profile

__all__ = [
    "DEFAULTS",
    "FLAGS",
    "ChosenProfile",
    "JobProfiles",
    "choose_profiles",
    "naming_the_flag",
]

DEFAULTS = {"evaluation": "gpu-1x", "cpu": "cpu"}
FLAGS = {"training": "--profile", "evaluation": "--eval-profile", "cpu": "--cpu-profile"}
_WHY = {
    "evaluation": "one GPU per evaluation-only job",
    "cpu": "a job that needs no device holds no GPU",
}


@dataclass(frozen=True)
class ChosenProfile:
    """A profile as the user named it (a name under ``slurm/`` or a path; "none": the
    defaults of :mod:`benchmarks.launch.launcher`), and the flag it came from."""

    name: str
    profile: ClusterProfile | None
    flag: str

    @property
    def gpus(self) -> int:
        return self.profile.gpus_per_node if self.profile is not None else 0


@dataclass(frozen=True)
class JobProfiles:
    """The profile of each kind of job; ``defaulted``: the kinds whose flag was not given."""

    training: ChosenProfile
    evaluation: ChosenProfile
    cpu: ChosenProfile
    defaulted: tuple[str, ...] = ()

    @property
    def main(self) -> ClusterProfile | None:
        """The ``--profile``: of training jobs, and of every local job."""
        return self.training.profile

    def of(self, kind: str) -> ChosenProfile:
        return getattr(self, kind)

    def label(self, kind: str) -> str:
        """The profile of ``kind``'s jobs, for a table cell: its name, marked if default."""
        return self.of(kind).name + (" (default)" if kind in self.defaulted else "")

    def why(self, kind: str) -> str:
        """Where the profile of ``kind``'s jobs comes from, in words."""
        chosen = self.of(kind)
        if kind not in self.defaulted:
            return f"{chosen.flag} {chosen.name}"
        if chosen is self.training:
            return f"--profile {chosen.name}, the default of {FLAGS[kind]} when it holds no GPU"
        held = f"--profile {self.training.name} holds {self.training.gpus} GPU(s) per node"
        return f"{chosen.name}, the default of {FLAGS[kind]}: {_WHY[kind]} ({held})"

    def groups(self, configs: Sequence[RunConfig]) -> list[tuple[ChosenProfile, list[RunConfig]]]:
        """``configs`` by the profile their jobs get, in order of first appearance; kinds
        with the same profile share a group (one Slurm array)."""
        found: dict[tuple[str, ClusterProfile | None], tuple[ChosenProfile, list[RunConfig]]]
        found = {}
        for config in configs:
            chosen = self.of(job_kind(config).name)
            found.setdefault((chosen.name, chosen.profile), (chosen, []))[1].append(config)
        return list(found.values())


def _chosen(flag: str, value: str | ClusterProfile | None, default: bool = False) -> ChosenProfile:
    if value is None:
        return ChosenProfile("none", None, flag)
    if isinstance(value, ClusterProfile):
        return ChosenProfile("given", value, flag)
    try:
        return ChosenProfile(value, load_profile(value), flag)
    except ConfigError as err:
        where = f"{flag} (default {value})" if default else flag
        raise ConfigError(f"{where}: {err}") from None


def choose_profiles(
    cluster: str,
    profile: str | ClusterProfile | None = None,
    eval_profile: str | ClusterProfile | None = None,
    cpu_profile: str | ClusterProfile | None = None,
) -> JobProfiles:
    """The profile of each kind of job on ``cluster``; see the module docstring. Names
    are read from ``slurm/<name>.yaml`` (or a path); ConfigError names the flag."""
    training = _chosen(FLAGS["training"], profile)
    if cluster != "slurm":
        for kind, given in (("evaluation", eval_profile), ("cpu", cpu_profile)):
            if given is not None:
                raise ConfigError(
                    f"{FLAGS[kind]}: only with --cluster slurm; {cluster} jobs all run with "
                    "--profile (a local job holds no allocation)"
                )
        return JobProfiles(training, training, training)
    chosen: dict[str, ChosenProfile] = {}
    defaulted = []
    for kind, given in (("evaluation", eval_profile), ("cpu", cpu_profile)):
        if given is not None:
            chosen[kind] = _chosen(FLAGS[kind], given)
            continue
        defaulted.append(kind)
        gpus = training.gpus > 0
        chosen[kind] = _chosen(FLAGS[kind], DEFAULTS[kind], True) if gpus else training
    cpu = chosen["cpu"]
    if cpu.gpus:
        raise ConfigError(
            f"{cpu.flag}: profile {cpu.name} holds {cpu.gpus} GPU(s) per node, and the jobs "
            "of tasks that need no device (idle-steps) hold none; expected a profile with "
            f"gpus_per_node: 0, e.g. {DEFAULTS['cpu']}"
        )
    return JobProfiles(training, chosen["evaluation"], cpu, tuple(defaulted))


@contextmanager
def naming_the_flag(chosen: ChosenProfile) -> Iterator[None]:
    """Prefix a ConfigError raised inside (a check of a job against ``chosen``) with the
    flag and profile it concerns, unless that is the ``--profile``, which errors name."""
    try:
        yield
    except ConfigError as err:
        if chosen.flag == FLAGS["training"]:
            raise
        raise ConfigError(f"{chosen.flag} {chosen.name}: {err}") from None
