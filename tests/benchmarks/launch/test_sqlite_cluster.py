"""The tracking store on a cluster.

* A Slurm submission that would write one sqlite file from several nodes, or over a
  network filesystem (read from the mount table), is refused before anything is
  submitted; one node on a local disk goes through.
* A tracking server, the store such a refusal advises, that answers ``/health`` but
  refuses the URI's host name is an error naming ``--allowed-hosts``.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from benchmarks.cli.main import main
from benchmarks.launch.sqlite_cluster import (
    filesystem_type,
    is_network_filesystem,
    parse_mount_table,
)
from benchmarks.launch.submission import Submission
from benchmarks.tracking.store import TrackingError, check_tracking_reachable
from tests.helpers import sqlite

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
40 22 0:45 / /home rw,relatime shared:20 - nfs4 filer:/export/home rw,vers=4.2
41 40 8:17 / /home/alice/scratch rw,relatime shared:21 - xfs /dev/sdb1 rw
42 22 0:46 / /lustre rw shared:22 - lustre 10.0.0.1@tcp:/fs rw,flock
43 22 0:47 / /mnt/my\\040share rw shared:23 - fuse.sshfs alice@host:/data rw
44 22 0:48 / /data rw shared:24 - ext4 /dev/sdc1 rw
45 22 0:49 / /data rw shared:25 - nfs filer:/data rw
"""


def test_the_filesystem_of_a_path_is_its_longest_mount_point_prefix():
    assert parse_mount_table(MOUNTINFO)[5] == ("/mnt/my share", "fuse.sshfs")
    expected = {
        "/home/alice/mlflow.db": "nfs4",
        "/home/alice/scratch/mlflow.db": "xfs",  # a local disk mounted inside the share
        "/home/alicebob/mlflow.db": "nfs4",
        "/homeless/mlflow.db": "ext4",  # a prefix of the name, not of the path
        "/lustre/project/mlflow.db": "lustre",
        "/mnt/my share/mlflow.db": "fuse.sshfs",
        "/data/mlflow.db": "nfs",  # mounted over the earlier /data
        "/tmp/mlflow.db": "ext4",
    }
    found = {path: filesystem_type(Path(path), MOUNTINFO) for path in expected}
    assert found == expected
    network = {path for path, fstype in found.items() if is_network_filesystem(fstype)}
    local = {"/home/alice/scratch/mlflow.db", "/homeless/mlflow.db", "/tmp/mlflow.db"}
    assert network == set(expected) - local
    # /proc/mounts lines (no mountinfo) give the same answer.
    mounts = "/dev/sda1 / ext4 rw 0 0\nfiler:/export/home /home nfs4 rw 0 0\n"
    assert filesystem_type(Path("/home/alice/mlflow.db"), mounts) == "nfs4"
    assert filesystem_type(Path("/home/alice/mlflow.db"), "") is None


class _Job:
    job_id = "1_0"


def _no_slurm(monkeypatch) -> list:
    """Record what would reach Slurm, and reach nothing."""
    reached: list = []

    def submit(configs, cluster, **kwargs):
        reached.append(configs)
        return Submission(list(configs), [_Job()] * len(configs), cluster, Path("runs"))

    monkeypatch.setattr("benchmarks.launch.plan.validate", lambda *a, **k: None)
    monkeypatch.setattr("benchmarks.launch.launcher.validate", lambda *a, **k: None)
    monkeypatch.setattr("benchmarks.launch.launcher._executor", lambda *a, **k: reached.append(a))
    monkeypatch.setattr("benchmarks.launch.plan.submit", submit)
    return reached


def _one_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("primebench: error: "), lines
    return lines[0]


def test_a_sqlite_store_on_a_network_filesystem_is_refused_before_submitting(
    tmp_path, capsys, monkeypatch
):
    reached = _no_slurm(monkeypatch)
    monkeypatch.setattr("benchmarks.launch.sqlite_cluster.filesystem_type", lambda path: "nfs4")
    store, runs = tmp_path / "mlflow.db", tmp_path / "runs"
    where = ["--tracking-uri", sqlite(store), "--runs-dir", str(runs)]
    sweep = ["sweep", "toy2d", "--cluster", "slurm", "--profile", "local-test", *where]
    reproduce = ["reproduce", "--scale", "cpu", "--cluster", "slurm", "--profile", "local-test"]
    for argv in (sweep, [*reproduce, *where]):
        line = _one_error(capsys, argv)
        assert f"tracking store {store} is on a network filesystem (nfs4)" in line
        assert "nothing was submitted" in line
        assert "mlflow server --backend-store-uri" in line and "http://<host>:5000" in line
    assert reached == [] and not runs.exists() and not store.exists()


def test_jobs_of_several_nodes_are_refused_and_one_node_on_a_local_disk_passes(
    tmp_path, capsys, monkeypatch
):
    reached = _no_slurm(monkeypatch)
    monkeypatch.setattr("benchmarks.launch.sqlite_cluster.filesystem_type", lambda path: "ext4")
    two = tmp_path / "two-nodes.yaml"
    two.write_text("nodes: 2\n")
    store = tmp_path / "mlflow.db"
    argv = ["reproduce", "--scale", "cpu", "--cluster", "slurm", "--tracking-uri", sqlite(store)]
    line = _one_error(capsys, [*argv, "--profile", str(two)])
    assert f"tracking store {store} (on ext4) would be written by jobs of 2 nodes" in line
    assert reached == []
    assert main([*argv, "--profile", "local-test"]) == 0  # one node, a local disk
    assert reached  # submitted


def test_a_server_that_refuses_the_uris_host_name_is_an_error_naming_allowed_hosts():
    """MLflow's server answers ``/health`` whatever the Host header, and refuses API calls
    from a name it does not list (HTTP 403): the check makes one API call too."""

    class StandIn(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            health = self.path == "/health"
            body = b"OK" if health else b"Invalid Host header - possible DNS rebinding"
            self.send_response(200 if health else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(TrackingError, match=r"refuses the host name .*--allowed-hosts"):
            check_tracking_reachable(uri)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(TrackingError, match=r"not reachable .*on the backend store it had"):
        check_tracking_reachable(uri, timeout=2.0)
