"""The built-in tasks: importing this package registers them (it is the
``primebench.tasks`` entry point of this package's metadata)."""

from . import idle_steps, image_checkpoint, images, text, toy2d, zero_shot  # noqa: F401
