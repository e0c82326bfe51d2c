"""Where the suite's own data files live: experiment files, cluster profiles, the paper's
tables.

The source tree is the single truth: ``benchmarks/experiments/``, ``slurm/`` and
``results/paper/``. The package reaches the two top-level folders through the links
``benchmarks/_data/profiles`` and ``benchmarks/_data/paper``; building a wheel copies
the files behind them (package data in ``pyproject.toml``), so a checkout, an editable
install and an installed wheel all read the same paths below.

This module imports nothing of the package: ``config`` imports it at import time.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["experiments_dir", "profiles_dir", "paper_dir"]

_PACKAGE = Path(__file__).resolve().parent


def experiments_dir() -> Path:
    """The experiment files (``<name>.yaml``)."""
    return _PACKAGE / "experiments"


def profiles_dir() -> Path:
    """The cluster profiles (the tree's ``slurm/``)."""
    return _PACKAGE / "_data" / "profiles"


def paper_dir() -> Path:
    """The paper's tables, CSV + README (the tree's ``results/paper/``)."""
    return _PACKAGE / "_data" / "paper"
