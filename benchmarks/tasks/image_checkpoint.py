"""The ell x NFE table (docs/method.md §8.4): sampling metrics of a trained image model at
another sampler setting. The runner loads the checkpoint the experiment's ``upstream:``
names; this task samples it with its own settings."""

from __future__ import annotations

from ..config.run_config import RunConfig
from ..core import ConfigError
from ..registry import TASKS
from .image_params import ImageParams
from .images import ImageGeneration

__all__ = ["ImageCheckpointEval"]


@TASKS.register("image-checkpoint")
class ImageCheckpointEval(ImageGeneration):
    """Held-out likelihood, samples and FID of the upstream run's last checkpoint."""

    Params = ImageParams
    trainable = False

    def check_upstream(self, upstream: RunConfig) -> None:
        self.check_mixture_temper(upstream.model)
        trained = upstream.task.params.dataset
        if trained != self.params.dataset:
            raise ConfigError(
                f"task.dataset: {self.params.dataset!r} differs from the trained model's "
                f"{trained!r} ({upstream.experiment}/{upstream.variant})"
            )
