"""Build hook: copy the top-level data folders into the wheel.

All metadata and package discovery live in ``pyproject.toml``. This file exists only
because setuptools' ``package-data`` can ship files that sit inside a package folder,
while the cluster profiles (``slurm/``) and the paper's tables (``results/paper/``) are
top-level folders of the tree and stay there (the tree is the single truth; no copies are
committed). :class:`BuildPy` adds them as data files of ``benchmarks``, under
``benchmarks/_data/<name>/``, following the table ``PACKAGED_DATA`` of
``benchmarks/resources.py`` — the same table the runtime lookup uses. Listing them as
``build_py`` data files also puts them into the sdist, so a wheel built from the sdist
has them too. Editable installs copy nothing and read the tree.
"""

from __future__ import annotations

import importlib.util
import os
from glob import glob
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

_ROOT = Path(__file__).resolve().parent


def _resources():
    """``benchmarks/resources.py`` loaded by path: the build needs none of the package's
    dependencies (the module imports only ``pathlib``)."""
    path = _ROOT / "benchmarks" / "resources.py"
    spec = importlib.util.spec_from_file_location("_primebench_resources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPy(build_py):
    """``build_py`` whose data files include the tree's top-level data folders."""

    def _extra_data_files(self) -> list[tuple[str, str, str, list[str]]]:
        res = _resources()
        extra = []
        for name, (tree_dir, patterns) in res.PACKAGED_DATA.items():
            package = f"benchmarks.{res.DATA_PACKAGE}.{name}"
            build_dir = os.path.join(self.build_lib, "benchmarks", res.DATA_PACKAGE, name)
            files = sorted(
                {
                    os.path.relpath(f, tree_dir)
                    for pattern in patterns
                    for f in glob(os.path.join(tree_dir, pattern))
                    if os.path.isfile(f)
                }
            )
            if not files:
                raise RuntimeError(f"no package data in {tree_dir}/ matching {patterns}")
            extra.append((package, tree_dir, build_dir, files))
        return extra

    def _get_data_files(self):
        return super()._get_data_files() + self._extra_data_files()

    def get_data_files_without_manifest(self):
        return super().get_data_files_without_manifest() + self._extra_data_files()


setup(cmdclass={"build_py": BuildPy})
