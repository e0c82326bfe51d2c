"""A sqlite tracking store and a Slurm sweep: where the file lives, and whether the
sweep's jobs may write it.

SQLite keeps one file whole under concurrent writers with POSIX file locks. On one
machine's local disk those locks, the runs' leases and ``<db>.lock`` make the jobs of a
sweep safe together. Network filesystems (NFS, SMB, Lustre, GPFS, ...) implement such
locks partly, lazily or not at all, and jobs on several nodes would write one file
through several clients' caches: the store can be damaged. A Slurm submission that would
do that is refused before anything is submitted, pointing to a tracking server (one
process owns the file, the jobs talk to it over HTTP).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..tracking.store import TrackingError, sqlite_path
from .profiles import ClusterProfile

__all__ = [
    "NETWORK_FILESYSTEMS",
    "parse_mount_table",
    "filesystem_type",
    "is_network_filesystem",
    "check_sqlite_for_slurm",
]

# Filesystem types (as the mount table names them) shared between machines; a FUSE
# filesystem is named ``fuse.<name>``.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "lustre", "gpfs",
        "beegfs", "ceph", "ceph-fuse", "glusterfs", "panfs", "orangefs", "pvfs2", "ocfs2",
        "gfs2", "wekafs", "quobyte", "sshfs", "juicefs", "s3fs", "gcsfuse", "rclone",
        "davfs", "mfs", "lizardfs",
    }
)  # fmt: skip
_DEVICE = re.compile(r"^\d+:\d+$")
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mount table field with its octal escapes (``\\040`` for a space) decoded."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mount_table(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of ``text``, in mount order.

    Reads ``/proc/self/mountinfo`` lines (``ID PARENT MAJ:MIN ROOT POINT OPTIONS
    [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS``) and ``/proc/mounts`` lines (``SOURCE
    POINT TYPE OPTIONS 0 0``); other lines are skipped."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 10 and _DEVICE.match(fields[2]) and "-" in fields[6:]:
            separator = fields.index("-", 6)
            if separator + 1 < len(fields):
                mounts.append((_unescape(fields[4]), fields[separator + 1]))
        elif len(fields) >= 3 and fields[1].startswith("/"):
            mounts.append((_unescape(fields[1]), fields[2]))
    return mounts


def _read_mount_table() -> str | None:
    for table in ("/proc/self/mountinfo", "/proc/mounts"):
        try:
            return Path(table).read_text()
        except OSError:
            continue
    return None  # not Linux


def filesystem_type(path: Path, mount_table: str | None = None) -> str | None:
    """The type of the filesystem that holds ``path`` (resolved): that of the longest
    mount point it lies under, the last mounted of several on one point. ``mount_table``:
    the text of ``/proc/self/mountinfo`` (read when None); None when there is none."""
    table = _read_mount_table() if mount_table is None else mount_table
    if table is None:
        return None
    target = str(Path(path).resolve())
    found, depth = None, -1
    for point, fstype in parse_mount_table(table):
        inside = point == "/" or target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= depth:
            found, depth = fstype, len(point)
    return found


def is_network_filesystem(fstype: str) -> bool:
    """Whether ``fstype`` is shared between machines (``fuse.sshfs`` as ``sshfs``)."""
    return fstype.removeprefix("fuse.") in NETWORK_FILESYSTEMS


def check_sqlite_for_slurm(uri: str, profile: ClusterProfile | None) -> None:
    """Raise :class:`TrackingError` when Slurm jobs of ``profile`` would write the sqlite
    store of ``uri`` from several nodes or over a network filesystem; a server URI, and
    one-node jobs on a local disk, pass."""
    path = sqlite_path(uri)
    if path is None:
        return
    nodes = (profile or ClusterProfile()).nodes
    fstype = filesystem_type(path.parent)
    if fstype is not None and is_network_filesystem(fstype):
        where = f"is on a network filesystem ({fstype})"
    elif nodes > 1:
        where = (
            f"(on {fstype or 'an unknown filesystem'}) would be written by jobs of {nodes} nodes"
        )
    else:
        return
    raise TrackingError(
        f"--cluster slurm: tracking store {path} {where}; SQLite cannot keep one file safe "
        "from jobs on several nodes, so nothing was submitted. Serve it from one machine "
        f"(docs/cluster.md, tracking from several nodes): `mlflow server --backend-store-uri "
        f"sqlite:///{path} --host "
        "0.0.0.0 --port 5000 --allowed-hosts <host>:5000`, then submit with "
        "`--tracking-uri http://<host>:5000`"
    )
