"""The results folder a report writes into: which of its files a report owns, and
replacing them as one set.

A results folder can hold files no report wrote (its ``README.md``: the paper's numbers,
or the findings of a scale's runs; a user's own notes). A report's index is therefore
``index.md``, and a report removes only what an earlier report wrote there, never
writing over anything else:

- Every report lists the files it wrote in ``.report-files`` (one name a line), written
  last through a temporary file and a rename. The next report removes the files of that
  list that it does not write again, so nothing stale is left beside the new index.
- A folder without that list (rendered before reports kept one) is read through its
  index: a file the old index (``index.md``, or ``README.md`` where older reports wrote
  their index, whose first line is a report's title) links to, the ``.tex`` and ``.csv``
  beside each linked ``.md``, and the index itself are taken as a report's own. Anything
  else is not.
- A file the new report would write over that is not a report's own stops the report
  with :class:`ReportError` before any file is moved: move it away or choose another
  ``--out``.

Files are first rendered into a staging folder inside the results folder and moved into
place one by one (``os.replace``, a rename on one filesystem); stale files are removed
only after every new one is in place. A failure at any point leaves every file whole
(either the old or the new version), and the list on disk always names at least every
file a report wrote, so the next report still cleans up.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "MANIFEST",
    "ReportError",
    "INDEX",
    "index_title",
    "install",
    "owned_files",
    "staging",
]

MANIFEST = ".report-files"
_HEADER = "# files the last primebench report wrote here; the next one removes those it does not"
_LINK = re.compile(r"\]\(([^()\s]+)\)")


class ReportError(RuntimeError):
    """The report cannot be written where it was asked to go."""


INDEX = "index.md"  # a report's index; a results folder's README.md is written by hand


RELEASED = "-released"  # the folder of a scale's runs of released weights: paper-released


def index_title(scale: str) -> str:
    """The index's first line for the folder of ``scale`` (``paper-released``: the runs
    that evaluate released weights)."""
    if scale.endswith(RELEASED):
        return f"# primebench results, scale `{scale[: -len(RELEASED)]}`, the released weights"
    return f"# primebench results, scale `{scale}`"


def staging(out_dir: Path) -> Path:
    """A new directory inside ``out_dir`` (made if need be), or :class:`ReportError`."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".render-", dir=out_dir))
    except OSError as err:
        raise ReportError(
            f"results directory {out_dir}: cannot write there ({err.strerror}); choose "
            "another with --out"
        ) from None


def _plain(name: str) -> bool:
    """A file name of this folder, not a path elsewhere nor one of the report's own
    working files."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def _read(path: Path) -> str | None:
    """The text of a regular file, not through a symbolic link; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return f.read()


def owned_files(out_dir: Path, scale: str) -> set[str]:
    """The names in ``out_dir`` that an earlier report wrote: its list, or, without one,
    what its index links to (see the module's docstring)."""
    listed = _read(out_dir / MANIFEST)
    if listed is not None:
        return {n for n in listed.splitlines() if _plain(n) and not n.startswith("#")}
    for index in (INDEX, "README.md"):
        text = _read(out_dir / index)
        if text is not None and text.splitlines()[:1] == [index_title(scale)]:
            break
    else:
        return set()
    owned = {index}
    for name in _LINK.findall(text):
        if _plain(name):
            owned.add(name)
            if name.endswith(".md"):
                owned.update({name[:-3] + ".tex", name[:-3] + ".csv"})
    return owned


def _write_manifest(out_dir: Path, names: Iterable[str]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=MANIFEST + "-", dir=out_dir)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600: readable like the files it lists
        with os.fdopen(fd, "w") as f:
            f.write("\n".join([_HEADER, *sorted(set(names))]) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_dir / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install(staged: Path, out_dir: Path, scale: str) -> list[str]:
    """Move every file of ``staged`` into ``out_dir`` and remove the files an earlier
    report wrote there that this one did not; return the names of the removed files."""
    new = sorted(p.name for p in staged.iterdir())
    owned = owned_files(out_dir, scale)
    foreign = [
        n
        for n in new
        if os.path.lexists(out_dir / n)
        and (n not in owned or ((out_dir / n).is_dir() and not (out_dir / n).is_symlink()))
    ]
    if foreign:
        raise ReportError(
            f"results directory {out_dir}: the report would replace "
            f"{', '.join(foreign)}, which no report wrote there (not in {MANIFEST}); move "
            "it away or choose another --out"
        )
    # The list names the old files and the new ones until the old ones are gone: a
    # report stopped half-way leaves nothing it wrote unlisted.
    _write_manifest(out_dir, owned | set(new))
    for name in new:
        os.replace(staged / name, out_dir / name)
    stale = sorted(owned - set(new))
    for name in stale:
        path = out_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
    _write_manifest(out_dir, new)
    return stale
