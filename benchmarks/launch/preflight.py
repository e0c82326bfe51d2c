"""The checks a submission passes before any job, store or directory exists: the
cluster and profile, the batch split over the profile's ranks, the runs other runs read
(``upstream:``, ``train.init_from``) and, on Slurm, the partition and ``sbatch``."""

from __future__ import annotations

from ..config.experiments import resolve_variant, upstream_config
from ..config.overrides import parse_overrides
from ..config.run_config import RunConfig
from ..core import ConfigError
from ..registry import TASKS
from .profiles import ClusterProfile, check_slurm_can_run

__all__ = ["CLUSTERS", "validate"]

CLUSTERS = ("debug", "local", "slurm")


def _check_layout(configs: list[RunConfig], profile: ClusterProfile | None) -> None:
    """Every config's global batch splits over the profile's ranks (ConfigError if not)."""
    world = profile.world_size if profile is not None else 1
    for config in configs:
        try:
            config.train.split(world)
        except ConfigError as err:
            raise ConfigError(
                f"{config.experiment}/{config.variant} on {world} rank(s): {err}"
            ) from None


def _check_sources(configs: list[RunConfig]) -> None:
    """Every run another one reads resolves and fits it: the ``upstream:`` of an
    evaluation task (``task.check_upstream``) and the ``train.init_from`` of a fine-tuned
    one, so that a mismatch fails here rather than inside the job."""
    for config in configs:
        if config.upstream is not None:
            task = TASKS.get(config.task.name)(config.task.params, config)
            task.check_upstream(upstream_config(config))
        source = config.train.init_source
        if source is not None:
            try:
                resolve_variant(
                    source[0],
                    config.scale,
                    parse_overrides(list(config.train.init_overrides)),
                    source[1],
                    config.seed,
                )
            except (ConfigError, FileNotFoundError) as err:
                raise ConfigError(f"train.init_from: {config.train.init_from}: {err}") from None


def validate(
    configs: list[RunConfig],
    cluster: str,
    profile: ClusterProfile | None = None,
    *,
    after: list[str] | None = None,
    check_sbatch: bool = True,
) -> None:
    """The checks of :func:`submit` that need no store: cluster, profile, batch split over
    the profile's ranks and, on Slurm, the partition (and sbatch unless ``check_sbatch`` is
    false, for dry runs). Raises ConfigError naming the field."""
    if cluster not in CLUSTERS:
        raise ConfigError(f"--cluster: expected one of {', '.join(CLUSTERS)}, got {cluster!r}")
    if cluster == "debug" and profile is not None and profile.world_size > 1:
        raise ConfigError("--cluster debug runs in this process: a profile with one rank only")
    if after and cluster != "slurm":
        raise ConfigError("job dependencies need --cluster slurm")
    _check_layout(configs, profile)
    _check_sources(configs)
    if cluster == "slurm":
        check_slurm_can_run(profile or ClusterProfile(), require_sbatch=check_sbatch)
