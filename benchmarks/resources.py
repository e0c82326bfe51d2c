"""Where the suite's own data files live: experiment files, cluster profiles, the paper's
tables.

The source tree is the single truth: ``benchmarks/experiments/``, ``slurm/`` and
``results/paper/``. A checkout or an editable install reads those folders. A wheel cannot
hold the two top-level folders as they are, so the build (``setup.py``) copies them into
the package as ``benchmarks/_data/profiles/`` and ``benchmarks/_data/paper/``; the
experiment files ship in place as package data. Each function below returns the packaged
copy when there is one (an installed wheel) and the tree's folder otherwise, so callers
never need to know how the suite was installed.

This module imports nothing of the package: ``config`` imports it at import time.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["experiments_dir", "profiles_dir", "paper_dir", "PACKAGED_DATA", "DATA_PACKAGE"]

_PACKAGE = Path(__file__).resolve().parent
_TREE = _PACKAGE.parent

#: Folder of the wheel's copies, relative to the ``benchmarks`` package.
DATA_PACKAGE = "_data"
#: What the build copies where: name under ``benchmarks/_data/`` -> (tree folder, globs).
#: ``setup.py`` reads this table, so build and lookup cannot disagree.
PACKAGED_DATA: dict[str, tuple[str, tuple[str, ...]]] = {
    "profiles": ("slurm", ("*.yaml",)),
    "paper": ("results/paper", ("*.csv", "README.md")),
}


def _packaged_or_tree(name: str) -> Path:
    packaged = _PACKAGE / DATA_PACKAGE / name
    if packaged.is_dir():
        return packaged
    return _TREE / PACKAGED_DATA[name][0]


def experiments_dir() -> Path:
    """The experiment files (``<name>.yaml``), inside the package in every install."""
    return _PACKAGE / "experiments"


def profiles_dir() -> Path:
    """The cluster profiles: the wheel's copy, else the tree's ``slurm/``."""
    return _packaged_or_tree("profiles")


def paper_dir() -> Path:
    """The paper's tables (CSV + README): the wheel's copy, else ``results/paper/``."""
    return _packaged_or_tree("paper")
