"""Files in shared directories, created and opened without following symbolic links.

A runs directory or a data cache may be shared with other users, and run ids and cache
keys are predictable: whoever can write there can plant ``runs/<id>/lease ->
~/.bashrc`` before a run starts, and a process that opens the path by name writes
through the link, into the file it names, with the rights of whoever runs the suite.
The rules here are those of careful programs in ``/tmp``-like directories:

- a file is opened with ``O_NOFOLLOW`` (a link as its last component fails with
  ``ELOOP``) and then checked with ``fstat``: a regular file, and, when opened for
  writing, one with a single name (a hard link to someone else's file is refused too);
- the directory holding it is opened with ``O_DIRECTORY | O_NOFOLLOW`` and the file
  opened relative to that descriptor, so the directory cannot be swapped for a link
  between the check and the open;
- a file published whole is written to a temporary file that ``mkstemp`` creates with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a fresh name no one else holds) beside its target,
  flushed to disk and renamed over the target: ``rename`` replaces a link at the target
  rather than writing through it.

The directories a user names (``--runs-dir``, the cache root) are followed: they are
where the user chose to keep the tree. Everything below them is not.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "UnsafePath",
    "atomic_write",
    "check_not_symlink",
    "ensure_directory",
    "ensure_private_directory",
    "open_directory",
    "open_nofollow",
    "read_nofollow",
]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT


class UnsafePath(RuntimeError):
    """A path in a shared directory is a symbolic link, or not the kind of file expected."""


def _lstat(path: str | Path, dir_fd: int | None = None) -> os.stat_result | None:
    try:
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _link_refused(path: str | Path, what: str) -> UnsafePath:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return UnsafePath(
        f"{path}: the {what} is a symbolic link{target}; refusing to follow a link in a "
        "shared directory (remove the link to go on)"
    )


def check_not_symlink(path: str | Path, what: str) -> None:
    """Raise :class:`UnsafePath` naming ``path`` if it is a symbolic link; a missing
    path passes. ``what`` says what the path is for ("run directory", ...)."""
    st = _lstat(path)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise _link_refused(path, what)


def ensure_directory(path: str | Path, what: str) -> Path:
    """``path`` as a real directory: created (with missing parents) if absent, refused
    with :class:`UnsafePath` if it is a symbolic link or not a directory."""
    path = Path(path)
    if _lstat(path) is None:
        try:
            path.mkdir(parents=True)
        except FileExistsError:  # created meanwhile; what it is is checked below
            pass
    st = _lstat(path)
    if st is None or stat.S_ISLNK(st.st_mode):
        raise _link_refused(path, what)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path}: the {what} is not a directory")
    return path


def ensure_private_directory(path: str | Path, what: str) -> Path:
    """:func:`ensure_directory`, and refused unless this user owns ``path`` and no one
    else may write in it (as ssh treats its own folder). For a folder whose files are
    unpickled, as submitit does with a job's results: whoever can write there could run
    code in every process that reads them. Created as 0700, whatever the umask."""
    path = Path(path)
    if _lstat(path) is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # created meanwhile; checked below
            pass
    path = ensure_directory(path, what)
    st = path.lstat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafePath(
            f"{path}: the {what} belongs to user id {st.st_uid}, not to this user "
            f"({os.getuid()}); its files are unpickled, so only its owner may use it"
        )
    if st.st_mode & 0o022:
        raise UnsafePath(
            f"{path}: the {what} is writable by others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"its files are unpickled: chmod go-w {path}"
        )
    return path


def open_directory(path: str | Path, what: str) -> int:
    """A descriptor of the real directory ``path`` (not a link to one), for
    :func:`open_nofollow`'s ``dir_fd``; the caller closes it."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        st = _lstat(path)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise _link_refused(path, what) from None
        if err.errno == errno.ENOTDIR and st is not None:
            raise UnsafePath(f"{path}: the {what} is not a directory") from None
        raise


def open_nofollow(
    path: str | Path, flags: int, what: str, mode: int = 0o644, dir_fd: int | None = None
) -> int:
    """``os.open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode)``, refusing with
    :class:`UnsafePath` a link, anything but a regular file and (when ``flags`` write) a
    file with more than one hard link. With ``dir_fd`` (from :func:`open_directory`) the
    file is opened by its name in that directory; ``path`` names it in messages."""
    name = os.path.basename(path) if dir_fd is not None else path
    # O_NONBLOCK: a planted FIFO must be refused, not waited on for a writer.
    extra = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(name, flags | extra, mode, dir_fd=dir_fd)
    except OSError as err:
        st = _lstat(name, dir_fd)
        if err.errno in (errno.ELOOP, errno.EMLINK) and st and stat.S_ISLNK(st.st_mode):
            raise _link_refused(path, what) from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{path}: the {what} is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{path}: the {what} is not a regular file")
        if flags & _WRITE_FLAGS and st.st_nlink > 1:
            raise UnsafePath(
                f"{path}: the {what} has {st.st_nlink} hard links; refusing to write to a "
                "file that is also another file. Remove it"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_nofollow(path: str | Path, what: str) -> bytes:
    """The bytes of the regular file ``path``, refusing a link (:class:`UnsafePath`)."""
    with os.fdopen(open_nofollow(path, os.O_RDONLY, what), "rb") as handle:
        return handle.read()


@contextmanager
def atomic_write(target: str | Path, what: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file beside ``target``, renamed over it when the block succeeds and
    removed otherwise: readers see the old file or the whole new one, a link planted at
    ``target`` is replaced (not written through), and a crash leaves no torn file.

    The temporary file is ``.<name>.<random>.tmp`` in the target's own directory (a
    rename across filesystems would be a copy); it is flushed and fsynced before the
    rename, and the directory after it. ``mode`` is the published file's permissions.
    """
    target = Path(target)
    st = _lstat(target)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{target}: the {what} is a directory; expected a file")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_directory(target.parent)


def _sync_directory(path: Path) -> None:
    """fsync a directory so a rename in it survives a crash (best effort: some
    filesystems refuse to sync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
