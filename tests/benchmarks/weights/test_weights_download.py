"""Fetching released weights through huggingface_hub's cache, without the network.

The cache is built in tmp_path the way the library lays it out (tests/hub_cache.py); the
library itself must accept it. Downloads come from a hub answering on the loopback. The
library reads its settings from the environment once, at import, into
``huggingface_hub.constants``: each test sets the variable and the constant together
(monkeypatch undoes both)."""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants, hf_hub_download, scan_cache_dir
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http

from benchmarks.weights import hub_errors
from benchmarks.weights.hub import fetch_weights
from benchmarks.weights.hub_errors import WeightsUnavailable, weights_download_command
from tests.hub_cache import FakeHub, FakeRepo, fill_cache, repo_dir, serve

REPO = "owner/prime"
FILE = "text/owt/results/checkpoint.ckpt"
OLD, NEW = "1" * 40, "2" * 40
WEIGHTS = bytes(range(256)) * 40
CONFIG = b'{"hidden": 8}'


def _set(monkeypatch: pytest.MonkeyPatch, env: str, value: object, const: str = "") -> None:
    monkeypatch.setenv(env, str(int(value) if isinstance(value, bool) else value))
    monkeypatch.setattr(constants, const or env, value)


class _NoSleep:
    """The ``time`` module without waiting: the library's retry backoff (1 + 2 + 4 + 8 + 8 s)
    runs at once; ``slept`` records what it asked for."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An offline library whose home, cache and token live in tmp_path."""
    home, hub = tmp_path / "hf", tmp_path / "hf" / "hub"
    _set(monkeypatch, "HF_HOME", str(home))
    _set(monkeypatch, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    _set(monkeypatch, "HF_HUB_OFFLINE", True)
    return hub


def _online(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> _NoSleep:
    _set(monkeypatch, "HF_HUB_OFFLINE", False)
    _set(monkeypatch, "HF_ENDPOINT", endpoint, "ENDPOINT")
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    _set(monkeypatch, "HF_HUB_ETAG_TIMEOUT", 1)
    _set(monkeypatch, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    clock = _NoSleep()
    monkeypatch.setattr(_http, "time", clock)
    monkeypatch.setattr(huggingface_hub.file_download, "time", clock)
    return clock


def _tree(root: Path) -> dict[str, str]:
    """Every entry under root: a link's target, a file's sha256."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_the_library_accepts_the_layout(cache: Path) -> None:
    blobs = fill_cache(cache, REPO, NEW, {FILE: WEIGHTS, "config.json": CONFIG})
    link = repo_dir(cache, REPO) / "snapshots" / NEW / FILE
    for revision in ("main", NEW):
        assert hf_hub_download(REPO, FILE, revision=revision, cache_dir=cache) == str(link)
    info = scan_cache_dir(cache)
    assert info.warnings == []
    (repo,) = info.repos
    (revision,) = repo.revisions
    assert (repo.repo_id, revision.commit_hash, revision.refs) == (REPO, NEW, {"main"})
    assert {f.blob_path for f in revision.files} == set(blobs.values())


def test_offline_fetch_from_a_filled_cache(cache: Path) -> None:
    fill_cache(cache, REPO, NEW, {FILE: WEIGHTS})
    before = _tree(cache)
    got = fetch_weights(REPO, FILE, NEW, cache_dir=cache)
    assert got.path == repo_dir(cache, REPO) / "snapshots" / NEW / FILE
    assert (got.sha256, got.size) == (hashlib.sha256(WEIGHTS).hexdigest(), len(WEIGHTS))
    assert (got.revision, got.origin) == (NEW, f"{REPO}/{FILE}@{NEW}")
    assert fetch_weights(REPO, FILE, NEW) == got  # cache_dir None: HF_HUB_CACHE
    assert _tree(cache) == before  # nothing written beside the cache's files


def test_a_branch_warns_once_a_commit_does_not(cache: Path, caplog) -> None:
    fill_cache(cache, REPO, NEW, {FILE: WEIGHTS, "config.json": CONFIG})
    caplog.set_level(logging.WARNING, logger="primebench")
    got = fetch_weights(REPO, FILE, "main", companions=("config.json",), cache_dir=cache)
    (record,) = caplog.records
    assert "not pinned" in record.getMessage() and NEW in record.getMessage()
    assert got.revision == NEW
    caplog.clear()
    fetch_weights(REPO, FILE, NEW, companions=("config.json",), cache_dir=cache)
    assert caplog.records == []


def test_companions_come_from_the_same_commit(cache: Path) -> None:
    fill_cache(cache, REPO, OLD, {"model.safetensors": b"old", "config.json": b"{}"}, refs=())
    fill_cache(cache, REPO, NEW, {"model.safetensors": WEIGHTS, "config.json": CONFIG})
    got = fetch_weights(REPO, "model.safetensors", companions=("config.json",), cache_dir=cache)
    (config,) = got.companions
    assert config == got.path.parent / "config.json" and config.read_bytes() == CONFIG
    # The branch's commit lacks the companion: no file of another commit stands in.
    (repo_dir(cache, REPO) / "snapshots" / NEW / "config.json").unlink()
    with pytest.raises(WeightsUnavailable, match=f"config.json at revision {NEW}") as err:
        fetch_weights(REPO, "model.safetensors", companions=("config.json",), cache_dir=cache)
    both = weights_download_command(REPO, "model.safetensors", NEW, ("config.json",))
    assert both in str(err.value)  # the command fetches the pair from that commit


def test_a_local_path(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(WEIGHTS)
    (tmp_path / "config.json").write_bytes(CONFIG)
    file = str(tmp_path / "model.safetensors")
    got = fetch_weights(None, file, companions=("config.json",))
    assert (got.path, got.size, got.revision) == (Path(file), len(WEIGHTS), None)
    assert got.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert (got.origin, got.companions) == (f"file:{file}", (tmp_path / "config.json",))


def test_a_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable, match=r"nope\.ckpt: weights file not found"):
        fetch_weights(None, str(tmp_path / "nope.ckpt"))
    with pytest.raises(WeightsUnavailable, match="not a regular file"):
        fetch_weights(None, str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(WEIGHTS)
    with pytest.raises(WeightsUnavailable, match=r"config\.json: companion .* not found"):
        fetch_weights(None, str(tmp_path / "model.safetensors"), companions=("config.json",))


def test_offline_with_an_empty_cache(cache: Path) -> None:
    with pytest.raises(WeightsUnavailable) as err:
        fetch_weights(REPO, FILE, "main", cache_dir=cache)
    message = str(err.value)
    assert f"{REPO}/{FILE} at revision main" in message and "HF_HUB_OFFLINE=1" in message
    assert weights_download_command(REPO, FILE, "main") in message
    assert isinstance(err.value.__cause__, LocalEntryNotFoundError)


def test_an_unreachable_hub_fails_quickly(cache: Path, monkeypatch) -> None:
    clock = _online(monkeypatch, "http://127.0.0.1:9")  # nothing listens on port 9
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match=f"{REPO}/{FILE} at revision main: cannot reach"):
        fetch_weights(REPO, FILE, cache_dir=cache)
    assert time.monotonic() - start < 5
    assert len(clock.slept) == 5  # the library retried, without the wait
    # A filled cache still serves while the hub cannot be reached.
    fill_cache(cache, REPO, NEW, {FILE: WEIGHTS})
    assert fetch_weights(REPO, FILE, cache_dir=cache).revision == NEW


def test_a_corrupt_cached_blob(cache: Path, monkeypatch) -> None:
    blob = fill_cache(cache, REPO, NEW, {FILE: WEIGHTS})[FILE]
    blob.write_bytes(WEIGHTS[::-1])  # same size, other content
    with pytest.raises(WeightsUnavailable, match=f"blob {blob} is corrupt.*delete {blob}"):
        fetch_weights(REPO, FILE, NEW, cache_dir=cache)
    # Doing what the message says fetches the file again, intact.
    blob.unlink()
    hub = FakeHub({REPO: FakeRepo({"main": NEW}, {NEW: {FILE: WEIGHTS}})})
    with serve(hub) as url:
        _online(monkeypatch, url)
        got = fetch_weights(REPO, FILE, NEW, cache_dir=cache)
    assert got.sha256 == hashlib.sha256(WEIGHTS).hexdigest() == blob.name


def test_an_expected_sha256_that_differs(cache: Path, tmp_path: Path) -> None:
    fill_cache(cache, REPO, NEW, {FILE: WEIGHTS})
    right, wrong = hashlib.sha256(WEIGHTS).hexdigest(), "0" * 64
    assert fetch_weights(REPO, FILE, NEW, cache_dir=cache, expected_sha256=right).sha256 == right
    with pytest.raises(WeightsUnavailable) as err:
        fetch_weights(REPO, FILE, NEW, cache_dir=cache, expected_sha256=wrong)
    for part in (FILE, right, wrong, "nothing was loaded"):
        assert part in str(err.value)
    (tmp_path / "w.ckpt").write_bytes(WEIGHTS)
    with pytest.raises(WeightsUnavailable, match=f"w.ckpt: sha256 {right} is not the expected"):
        fetch_weights(None, str(tmp_path / "w.ckpt"), expected_sha256=wrong)


def test_a_download_fills_the_cache_as_laid_out_here(cache: Path, tmp_path, monkeypatch) -> None:
    files = {"model.safetensors": WEIGHTS, "config.json": CONFIG}
    hub = FakeHub({REPO: FakeRepo({"main": NEW}, {NEW: files})})
    with serve(hub) as url:
        _online(monkeypatch, url)
        got = fetch_weights(REPO, "model.safetensors", companions=("config.json",))
    assert got.revision == NEW and got.companions[0].read_bytes() == CONFIG
    assert f"GET /{REPO}/resolve/{NEW}/config.json" in hub.requests  # pinned to the commit
    fill_cache(tmp_path / "built", REPO, NEW, files)
    # Blob names, relative links, refs: the same (and no .incomplete file left).
    assert _tree(repo_dir(cache, REPO)) == _tree(repo_dir(tmp_path / "built", REPO))


@pytest.mark.parametrize(
    ("repos", "revision", "file", "cause", "says"),
    [
        ({}, "main", FILE, RepositoryNotFoundError, f"repository {REPO} not found"),
        ({REPO: True}, "main", FILE, GatedRepoError, f"repository {REPO} is gated"),
        ({REPO: False}, "v9", FILE, RevisionNotFoundError, f"revision v9 not found in {REPO}"),
        ({REPO: False}, "main", "x.ckpt", RemoteEntryNotFoundError, "file x.ckpt not found"),
    ],
)
def test_what_the_hub_does_not_have(cache, monkeypatch, repos, revision, file, cause, says):
    hub = FakeHub({r: FakeRepo({"main": NEW}, {NEW: {FILE: WEIGHTS}}, g) for r, g in repos.items()})
    with serve(hub) as url, pytest.raises(WeightsUnavailable, match=says) as err:
        _online(monkeypatch, url)
        fetch_weights(REPO, file, revision, cache_dir=cache)
    assert f"{REPO}/{file} at revision {revision}" in str(err.value)
    assert type(err.value.__cause__) is cause


@pytest.mark.parametrize("fault", ["truncate", "wrong_etag"])
def test_a_broken_download_leaves_no_file(cache: Path, monkeypatch, fault: str) -> None:
    hub = FakeHub({REPO: FakeRepo({"main": NEW}, {NEW: {FILE: WEIGHTS}})})
    getattr(hub, fault).add(FILE)
    with serve(hub) as url, pytest.raises(WeightsUnavailable) as err:
        _online(monkeypatch, url)
        fetch_weights(REPO, FILE, NEW, cache_dir=cache)
    names = [p.name for p in cache.rglob("*")]
    assert not any(n.endswith(".incomplete") for n in names)
    if fault == "truncate":  # cut mid-file: resumed 5 times, then given up, nothing kept
        assert "download broke off" in str(err.value)
        assert sum(r.startswith("GET") for r in hub.requests) == 6
        assert not list((repo_dir(cache, REPO) / "blobs").iterdir())
        assert not (repo_dir(cache, REPO) / "snapshots" / NEW / FILE).exists()
    else:  # complete but not what the hub announced: the blob name gives it away
        assert "is corrupt" in str(err.value)


@pytest.mark.parametrize("has_hf", [True, False])
def test_the_download_command_works_on_a_filled_cache(cache, monkeypatch, has_hf) -> None:
    fill_cache(cache, REPO, NEW, {FILE: WEIGHTS, "config.json": CONFIG})
    monkeypatch.setattr(hub_errors, "_has_hf_command", lambda: has_hf)
    command = weights_download_command(REPO, FILE, NEW, ("config.json",))
    words = shlex.split(command)
    if has_hf:
        assert words == ["hf", "download", REPO, FILE, "config.json", "--revision", NEW]
        words = [str(Path(sys.executable).with_name("hf")), *words[1:], "--quiet"]
    else:
        words = [sys.executable, *words[1:]]
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(words, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    snapshot = repo_dir(cache, REPO) / "snapshots" / NEW
    if has_hf:  # several files: the command prints the snapshot directory
        assert done.stdout.strip() == str(snapshot)
    else:
        assert done.stdout.split() == [str(snapshot / FILE), str(snapshot / "config.json")]
