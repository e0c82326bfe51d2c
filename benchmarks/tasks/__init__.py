"""The built-in tasks: importing this package registers them (it is the
``primebench.tasks`` entry point of this package's metadata)."""

from . import (  # noqa: F401
    idle_steps,
    image_checkpoint,
    image_fid_curve,
    images,
    text,
    toy2d,
    zero_shot,
)
