"""Reports: the complete runs of one scale -> Markdown / LaTeX / CSV tables and figures,
beside the paper's numbers. One renderer per table or figure, reading each run's typed
configuration back from the ``config.json`` stored with it."""

from .render import RENDERERS, ReportError, render_report, renderer
from .store import load_runs

__all__ = ["RENDERERS", "ReportError", "load_runs", "render_report", "renderer"]
