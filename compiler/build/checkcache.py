"""The validate cache: `specops validate` on a repo whose inputs are unchanged since the last
run replays that run's diagnostics instead of loading, resolving and checking again.

Like mypy's cache, a record keeps, per input file, what it was: `[size, mtime_ns, sha256]`.
A later run stats every file first and reads and hashes only those whose size or mtime
moved (or whose mtime is too close to when the record was written to be trusted: a file
written in the same clock tick as the record could change without its mtime moving, git's
"racily clean" case). The inputs are:

- every YAML file the loader would read (the same discovery, `.specopsignore` included) and
  the bytes of `.specopsignore` and `specops.lock`;
- every local file or folder validate may read for a spec: each string in a spec that is a
  relative path inside the repo (`file://` stripped) is recorded, present or missing, with
  its state: a file's sha256 (size and mtime for one over 8 MiB), a folder's listing (names,
  sizes, mtimes) and, for a model folder, its config.json's bytes and the digest of its
  weights' headers (what capacity counts from), `missing`. So creating a
  data file that an error said was missing, or editing a CSV header, runs validate again;
- the specops code (build.cache.code_fingerprint), the environments asked for, the Python
  version and the installed parser/validator libraries (their messages are in the output).

Any difference, and the slow path runs and writes a new record: the output is the same,
byte for byte, as a run without the cache (the diagnostics are stored whole, positions and
notes included, and rendered by the same code). One record per (code, environments, Python)
key under `<root>/.specops/cache/check/`; at most KEEP records (newest kept): bounded.
Standard library only at import: the CLI calls `lookup` before importing anything heavy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from specops.build.cache import (
    MAX_PROBE_BYTES,
    RACY_NS,
    WEIGHTS_PROBE,
    code_fingerprint,
    discover,
    named_paths,
    stat_trusted,
    weights_state,
)
from specops.diagnostics import Diagnostic, Diagnostics
from specops.fsio import ReadRefused, read_regular, write_atomic
from specops.paths import IGNORE_FILE, MAX_FILE_BYTES, find_root, repo_cache_dir
from specops.resolve.lockfile import LOCK_FILE

FORMAT = 1
KEEP = 8
# The libraries whose messages reach validate's output.
_LIBS = ("pydantic", "pydantic_core", "yaml", "jinja2", "jsonschema", "cel")


@dataclass
class CachedCheck:
    """What a validate run reported: its diagnostics, spec count and environments."""

    root: Path
    diagnostics: Diagnostics
    specs: int
    envs: list[str]


def _dir(root: Path) -> Path:
    return repo_cache_dir(root) / "check"


def libs() -> str:
    """The parser/validator libraries whose messages reach diagnostics, by where they are installed."""
    out = []
    for name in _LIBS:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        try:
            out.append(f"{name}={origin}:{os.stat(origin).st_mtime_ns}" if origin else f"{name}=-")
        except OSError:
            out.append(f"{name}={origin}")
    return ";".join(out)


def _key(envs: Iterable[str] | None) -> str:
    envs_s = ",".join(sorted(envs)) if envs else "*"
    return hashlib.sha256(f"{FORMAT}\n{code_fingerprint()}\n{envs_s}\n{sys.version}\n{libs()}".encode()).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _small(path: Path) -> bytes:
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except (OSError, ReadRefused):
        return b"\0unreadable"


# ---- file states ------------------------------------------------------------------------------


def probe_state(root: Path, rel: str) -> str:
    """What validate could see at `rel`: missing, a folder listing, a file's bytes, or special;
    for `<folder>/*.safetensors` (cache.WEIGHTS_PROBE), the digest of the weights' headers."""
    if rel.endswith(WEIGHTS_PROBE):
        return weights_state(root, rel)
    full = os.path.join(root, rel)
    try:
        st = os.stat(full)
    except OSError:
        return "link" if os.path.lexists(full) else "missing"
    real = os.path.realpath(full)
    tag = "" if real == os.path.abspath(full) else "@" + real
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(full) as it:
                entries = sorted(it, key=lambda e: e.name)
            listing = []
            for e in entries:
                try:
                    s = e.stat()
                    listing.append(f"{e.name}\0{stat.S_IFMT(s.st_mode)}\0{s.st_size}\0{s.st_mtime_ns}")
                except OSError:
                    listing.append(f"{e.name}\0?")
        except OSError:
            return "dir:unreadable" + tag
        return "dir:" + _sha("\n".join(listing).encode()) + tag
    if stat.S_ISREG(st.st_mode):
        if st.st_size > MAX_PROBE_BYTES:
            return f"stat:{st.st_size}:{st.st_mtime_ns}{tag}"
        try:
            return "sha:" + _sha(read_regular(Path(full), MAX_PROBE_BYTES)) + tag
        except (OSError, ReadRefused):
            return "unreadable" + tag
    return "special" + tag


def _same(root: Path, rel: str, rec: list, stored_ns: int, now: Any) -> bool:
    """A recorded input is unchanged: same size and mtime (and not racy), else same state."""
    state, size, mtime = rec
    try:
        st = os.stat(os.path.join(root, rel))
    except OSError:
        return now(rel) == state
    if stat_trusted(st, size, mtime, stored_ns - RACY_NS):
        return True
    return now(rel) == state


def _record(root: Path, rel: str, state: str) -> list:
    try:
        st = os.stat(os.path.join(root, rel))
        if stat.S_ISREG(st.st_mode):
            return [state, st.st_size, st.st_mtime_ns]
    except OSError:
        pass
    return [state, -1, -1]


def _yaml_state(root: Path, rel: str) -> str:
    return "sha:" + _sha(_small(root / rel))


# ---- lookup / store ------------------------------------------------------------------------


def lookup(path: str | Path, envs: Iterable[str] | None = None) -> CachedCheck | None:
    """The last validate run's result when none of its inputs changed, else None."""
    root = find_root(Path(path))
    if root is None:
        return None
    rec_path = _dir(root) / f"{_key(envs)}.json"
    try:
        rec = json.loads(rec_path.read_bytes())
        if rec.get("format") != FORMAT:
            return None
        files = discover(root)
        if files is None or sorted(rec["files"]) != files:
            return None
        stored_ns = rec["stored_ns"]
        if rec["ignore"] != _sha(_small(root / IGNORE_FILE)) or rec["lock"] != _sha(_small(root / LOCK_FILE)):
            return None
        for rel, r in rec["files"].items():
            if not _same(root, rel, r, stored_ns, lambda x: _yaml_state(root, x)):
                return None
        for rel, r in rec["probes"].items():
            if not _same(root, rel, r, stored_ns, lambda x: probe_state(root, x)):
                return None
        res = rec["result"]
        diags = Diagnostics([Diagnostic.from_row(r) for r in res["diagnostics"]])
        return CachedCheck(root, diags, int(res["specs"]), list(res["envs"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def started() -> int:
    """The clock before a validate run reads anything (store's `started_ns`)."""
    return time.time_ns()


def store(resolved: Any, started_ns: int, envs: Iterable[str] | None = None) -> None:
    """Record what validate reported for `resolved` (checks.analyze's result, begun at
    `started_ns`) and every input it depended on. Nothing is stored when an input changed
    while it ran (its mtime is past `started_ns`). Best effort: a read-only checkout only
    loses the speed."""
    root = resolved.repo.root
    if find_root(root) != root:
        return
    files = resolved.repo.discovered
    if files is None:
        files = discover(root)
    if files is None or sorted(resolved.repo.files) != files:
        return  # a file that could not be read: its diagnostic is not replayed
    probes: dict[str, list] = {}
    for rel in named_paths(sp.doc.data for sp in resolved.repo.specs):
        probes[rel] = _record(root, rel, probe_state(root, rel))
        if probes[rel][0].startswith("dir:"):
            # The capacity check reads a model folder's config.json: its bytes, not only its
            # listing's mtime, so an edit inside one clock tick is still seen.
            sub = f"{rel}/config.json"
            probes[sub] = _record(root, sub, probe_state(root, sub))
            # ...and the weights' headers beside it, by content: a listing's mtimes miss a header
            # rewritten at the same size and mtime (rsync -t, a tar extract).
            probes[rel + WEIGHTS_PROBE] = _record(root, rel + WEIGHTS_PROBE, probe_state(root, rel + WEIGHTS_PROBE))
    yaml_files = {rel: _record(root, rel, "sha:" + _sha(raw)) for rel, raw in resolved.repo.files.items()}
    if any(r[2] >= started_ns for r in (*yaml_files.values(), *probes.values())):
        return  # edited while validate ran: what it reported may be of the old bytes
    rec = {
        "format": FORMAT, "stored_ns": started_ns,
        "ignore": _sha(_small(root / IGNORE_FILE)), "lock": _sha(_small(root / LOCK_FILE)),
        "files": yaml_files, "probes": dict(sorted(probes.items())),
        "result": {"specs": len(resolved.repo.specs), "envs": sorted(resolved.envs),
                   "diagnostics": [d.to_row() for d in resolved.diagnostics.sorted()]},
    }
    try:
        d = _dir(root)
        write_atomic(d / f"{_key(envs)}.json", json.dumps(rec, separators=(",", ":")).encode())
        old = sorted(d.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for p in old[KEEP:]:
            p.unlink(missing_ok=True)
    except OSError:
        return
