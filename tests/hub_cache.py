"""A hub cache laid out as ``huggingface_hub`` lays it out, and a hub on the loopback.

Layout (``huggingface_hub`` 2.x, ``file_download._hf_hub_download_to_cache_dir``)::

    <cache>/models--<owner>--<name>/blobs/<etag>
    <cache>/models--<owner>--<name>/snapshots/<commit>/<path>   -> relative link to the blob
    <cache>/models--<owner>--<name>/refs/<branch>               the commit, no newline

The etag of an LFS file is its sha256; of a small (git) file, its git blob id:
sha1 of ``b"blob <size>\\0" + content``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def etag_of(path: str, data: bytes) -> str:
    """The hub's etag: sha256 for the LFS files (weights), git blob id for the others."""
    lfs = not path.endswith((".json", ".md", ".txt"))
    return hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)


def repo_dir(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def fill_cache(
    cache: Path, repo: str, commit: str, files: dict[str, bytes], refs: tuple[str, ...] = ("main",)
) -> dict[str, Path]:
    """Put ``files`` (repo path -> content) of ``repo`` at ``commit`` into ``cache``,
    with ``refs`` pointing at ``commit``; the blob of each path."""
    store = repo_dir(cache, repo)
    blobs = {}
    for name, data in files.items():
        blob = store / "blobs" / etag_of(name, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = store / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        blobs[name] = blob
    for ref in refs:
        (store / "refs").mkdir(parents=True, exist_ok=True)
        (store / "refs" / ref).write_text(commit)  # the library reads it without strip()
    return blobs


@dataclass
class FakeRepo:
    refs: dict[str, str]
    commits: dict[str, dict[str, bytes]]
    gated: bool = False


@dataclass
class FakeHub:
    """Answers ``HEAD``/``GET /<owner>/<name>/resolve/<revision>/<path>`` as the hub does
    (status, ``X-Error-Code``, ``X-Repo-Commit``, ``ETag``, ``Content-Length``)."""

    repos: dict[str, FakeRepo] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)
    """Paths whose body is cut in half (the connection closes mid-file)."""
    wrong_etag: set[str] = field(default_factory=set)
    """Paths announced with the sha256 of other content."""
    requests: list[str] = field(default_factory=list)

    def answer(self, method: str, url: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(f"{method} {url}")
        parts = url.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, b""
        repo = self.repos.get("/".join(parts[:2]))
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        if repo.gated:
            return 403, {"X-Error-Code": "GatedRepo"}, b""
        revision, path = parts[3], "/".join(parts[4:])
        commit = repo.refs.get(revision, revision)
        if commit not in repo.commits:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        data = repo.commits[commit].get(path)
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b""
        etag = etag_of(path, b"other" + data if path in self.wrong_etag else data)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Content-Length": str(len(data))}
        return 200, headers, data[: len(data) // 2] if path in self.truncate else data


@contextmanager
def serve(hub: FakeHub) -> Iterator[str]:
    """Run ``hub`` on 127.0.0.1 in a thread; its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bool) -> None:
            status, headers, data = hub.answer(self.command, self.path)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", "0")
            self.end_headers()
            if body:
                self.wfile.write(data)
            self.close_connection = True  # a cut body ends with the connection

        def do_HEAD(self) -> None:
            self._reply(body=False)

        def do_GET(self) -> None:
            self._reply(body=True)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
