"""Benchmark tasks; importing this package registers them."""

from . import idle_steps, images, text, toy2d, zero_shot  # noqa: F401
from .base import DataSpec, EvalContext, EvalOutput, Task

__all__ = ["Task", "DataSpec", "EvalContext", "EvalOutput"]
