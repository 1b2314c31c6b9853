"""specops.lock: every pinned data source resolved to its content, like dvc.lock or a package lock.

The lock is committed at the repo root, JSON with sorted keys (format "specops.lock/v1")::

    {"format": "specops.lock/v1",
     "sources": {
       "file://data/abalone.csv": {"version": "2024-01-01", "digest": "sha256:…", "size": 191234},
       "s3://bucket/key.csv":     {"version": "v3", "etag": "…", "versionId": "…"},
       "hf://datasets/org/name":  {"version": "main", "digest": "hf-commit:<sha>", "commit": "<sha>"}}}

Keyed by URI, so an environment that overrides a dataset's source has its own pin. `specops
lock` writes it (ops/lock.py); validate and diff compare `file://` sources with it here, never
over the network: size first, then the modification time against a local stat cache
(`.specops/cache/lock-stat.json`, not committed), and the full sha256 only when those changed.
Lowering hands each data_check step its pin, and the step refuses data that differs.

Standard library only: the compile cache asks for the lock's bytes before anything else loads.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from specops.fsio import sha256_file, write_atomic

LOCK_FILE = "specops.lock"
FORMAT = "specops.lock/v1"
STAT_CACHE = Path(".specops") / "cache" / "lock-stat.json"
# Keys of a pin that the data_check step compares with what it reads.
PIN_KEYS = ("digest", "etag", "versionId", "generation", "commit")


class LockError(Exception):
    """specops.lock exists but cannot be used (not JSON, wrong format)."""


def lock_bytes(root: Path) -> bytes:
    try:
        return (Path(root) / LOCK_FILE).read_bytes()
    except OSError:
        return b""


def read_lock(root: Path) -> dict[str, Any] | None:
    """The lock's sources ({uri: pin}), None when there is no lock. Raises LockError."""
    path = Path(root) / LOCK_FILE
    try:
        st = path.stat()
    except OSError:
        return None
    return _parse(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LockError(f"{LOCK_FILE} is not valid JSON ({e}); regenerate it with `specops lock`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("sources"), dict):
        raise LockError(f"{LOCK_FILE} is not a {FORMAT} file; regenerate it with `specops lock`")
    return data["sources"]


def render_lock(sources: dict[str, dict]) -> bytes:
    doc = {"format": FORMAT, "sources": {uri: dict(sorted(pin.items())) for uri, pin in sorted(sources.items())}}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def write_lock(root: Path, sources: dict[str, dict]) -> None:
    write_atomic(Path(root) / LOCK_FILE, render_lock(sources))


def pin_for(root: Path, uri: str, version: str | None) -> dict[str, str] | None:
    """The data_check step's `lock` param for a source: its pin when the lock has one for
    this URI and version (a changed version is a new source until it is locked)."""
    try:
        sources = read_lock(root)
    except LockError:
        return None  # validate reports it; nothing to enforce
    entry = (sources or {}).get(uri)
    if entry is None or entry.get("version") != version:
        return None
    return {k: str(entry[k]) for k in PIN_KEYS if entry.get(k) is not None}


# ---- local file digests with a stat cache -----------------------------------------------------


class StatCache:
    """{repo-relative path: [size, mtime_ns, sha256]} under .specops/cache: a file whose size
    and mtime are unchanged keeps its digest without being read again."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / STAT_CACHE
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.entries: dict[str, list] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def digest(self, rel: str) -> tuple[int, str]:
        """(size, "sha256:<hex>") of a repo file."""
        full = self.root / rel
        st = full.stat()
        hit = self.entries.get(rel)
        if isinstance(hit, list) and len(hit) == 3 and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return st.st_size, f"sha256:{hit[2]}"
        digest = sha256_file(full)
        self.entries[rel] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return st.st_size, f"sha256:{digest}"

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            write_atomic(self.path, (json.dumps(self.entries, sort_keys=True) + "\n").encode())
        except OSError:
            pass  # a read-only checkout: the cache only saves time
        self.dirty = False


def local_changed(root: Path, uri: str, pin: dict[str, Any], stats: StatCache) -> str | None:
    """Why a locked file:// source no longer matches its pin (None when it matches). Size
    first: an appended row changes it without reading a byte."""
    rel = uri[len("file://"):]
    try:
        size = os.stat(Path(root) / rel).st_size
    except OSError:
        return None  # a missing file is reported by the path check
    want = pin.get("digest")
    if pin.get("size") is not None and size != pin["size"]:
        _, now = stats.digest(rel)
        return f"'{rel}' changed since `specops lock`: {want} ({pin['size']} bytes) in the lock, {now} ({size} bytes) now"
    _, now = stats.digest(rel)
    if want is not None and now != want:
        return f"'{rel}' changed since `specops lock`: {want} in the lock, {now} now"
    return None
