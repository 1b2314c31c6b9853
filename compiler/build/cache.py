"""Incremental compile: a content-addressed build cache under `<root>/.specops/cache/builds/`.

Format (CACHE_FORMAT 3). Two kinds of file:

- `in-<inputs key>.json`: `{"entries": [{probes, pack}]}`, newest first: what a compile of
  exactly these YAML inputs also read from the repo (the "probes": `{path: sha256 | "dir"}`:
  model `config.json` files, dataset `file://` paths, base-model folders) and the key of the
  pack it produced.
- `pack-<pack key>.bin`: one JSON index line (envs, artifacts with their manifest fields and
  byte ranges, the specs index, the build's diagnostics, and the emission index: which
  artifacts each pipeline's or serving target's emission key produced, the next compile's
  emission cache, see compile.EmitCache) followed by the artifact bytes. Only the newest
  pack stays as it is; older ones are zlib-compressed (`.bin.z`) and kept while the cache
  stays within twice the build output (`prune`).

The inputs key is the sha256 of: the cache format, the specops version, a content hash of the
specops code itself (compiler, backends, specs, templates: a backend upgrade or a local edit
invalidates everything, so output never goes stale), the environments asked for, and every
discovered YAML file with the sha256 of its bytes (plus `.specopsignore`). The pack key adds
the probes' hashes. Only builds without errors are stored, so a hit reproduces exactly what
a full compile would: the same artifacts, byte for byte, and the same warnings.

`fast_compile(path, envs)` is the whole-repo fast path: it hashes the inputs without parsing
anything (no pydantic, no YAML), and returns the last build when nothing changed. The
no-op recompile of the 1,000-spec benchmark repo takes a few tens of milliseconds this way.
This module imports only the standard library at top level, so the CLI can call it first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from specops import __version__
from specops.fsio import ReadRefused, read_regular, write_atomic
from specops.paths import discover as _discover
from specops.paths import MAX_FILE_BYTES, find_root, repo_cache_dir
from specops.paths import ignore_patterns as _patterns
from specops.resolve.lockfile import lock_bytes

CACHE_FORMAT = 3  # 2: artifacts carry role, resource and file; 3: packs carry the emission index
KEEP_PACKS = 16  # older packs are pruned after a store; each is one build of the repo

_CODE_FP: str | None = None


def cache_dir_of(root: Path) -> Path:
    return repo_cache_dir(root)


def _builds(cache_dir: Path) -> Path:
    return Path(cache_dir) / "builds"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_fingerprint() -> str:
    """sha256 over the specops package's own files (code, templates, flag lists, schemas)."""
    global _CODE_FP
    if _CODE_FP is not None:
        return _CODE_FP
    h = hashlib.sha256(f"specops {__version__} cache {CACHE_FORMAT}\n".encode())
    roots = [Path(__file__).resolve().parent]
    for sub in ("backends", "specs", "templates"):
        spec = importlib.util.find_spec(f"specops.{sub}")
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    for base in sorted(set(roots)):
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
            for fn in sorted(filenames):
                if fn.endswith((".pyc", ".tmp")):
                    continue
                p = os.path.join(dirpath, fn)
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                h.update(f"{os.path.relpath(p, base.parent)}\0{_sha(data)}\n".encode())
    _CODE_FP = h.hexdigest()
    return _CODE_FP


# ---- discovery without the loader ---------------------------------------------------------




def discover(root: Path) -> list[str] | None:
    """The YAML files the loader would read, or None where it would report a problem (an
    unreadable folder, a symlink leaving the repo): the slow path then reports it."""
    files, problems = _discover(root)
    return None if problems else files


# ---- keys ----------------------------------------------------------------------------------


def inputs_key(files: dict[str, bytes], envs: Iterable[str] | None, ignore_raw: bytes = b"",
               lock_raw: bytes = b"") -> str:
    h = hashlib.sha256(f"{code_fingerprint()}\nenvs={','.join(sorted(envs)) if envs else '*'}\n".encode())
    h.update(b"ignore\0" + _sha(ignore_raw).encode() + b"\n")
    # specops.lock pins reach the data_check steps' params: a re-lock is a new input.
    h.update(b"lock\0" + _sha(lock_raw).encode() + b"\n")
    for rel in sorted(files):
        h.update(f"{rel}\0{_sha(files[rel])}\n".encode())
    return h.hexdigest()


# Probed files (data, model configs) up to this size are hashed; bigger ones by size and mtime.
MAX_PROBE_BYTES = 8 << 20


def _probe(root: Path, rel: str) -> str | None:
    p = root / rel
    if p.is_dir():
        return "dir"
    try:
        return _sha(read_regular(p, MAX_PROBE_BYTES))
    except ReadRefused as e:
        if not e.too_large:
            return None  # a FIFO or device: never read (it would block or never end)
        try:  # a big data file: its size and mtime stand for its bytes
            st = p.stat()
        except OSError:
            return None
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return None


def probes_of(resolved: Any) -> dict[str, str]:
    """Repo files a compile may have looked at besides the YAML: every string in a spec that
    names an existing path inside the repo (`file://` stripped), and `config.json` inside
    such folders. Over-collecting costs a stat on the fast path; missing one would be wrong."""
    root = resolved.repo.root
    real_root = os.path.realpath(root)
    seen: set[str] = set()
    out: dict[str, str] = {}

    def visit(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                visit(x)
        elif isinstance(v, list):
            for x in v:
                visit(x)
        elif isinstance(v, str) and v and len(v) < 1024:
            rel = v[len("file://"):] if v.startswith("file://") else v
            if rel in seen or rel.startswith("/") or "\0" in rel or "://" in rel or ".." in rel.split("/"):
                return
            seen.add(rel)
            full = os.path.join(root, rel)
            if not os.path.exists(full) or os.path.commonpath([real_root, os.path.realpath(full)]) != real_root:
                return
            rel = os.path.normpath(rel).replace(os.sep, "/")
            got = _probe(root, rel)
            if got is not None:
                out[rel] = got
            if got == "dir":
                sub = f"{rel}/config.json"
                if (c := _probe(root, sub)) is not None:
                    out[sub] = c

    for sp in resolved.repo.specs:
        visit(sp.doc.data)
    return dict(sorted(out.items()))


def _pack_key(ikey: str, probes: dict[str, str]) -> str:
    return _sha((ikey + "\n" + json.dumps(probes, sort_keys=True)).encode())


# ---- store / load ----------------------------------------------------------------------------


def store(cache_dir: Path, ikey: str, probes: dict[str, str], envs: list[str], index: dict[str, Any],
          blob: bytes) -> None:
    """Record a build (the build stage's `Build.to_record()`: a JSON-able index and the bytes
    it points into) under its keys. Best effort: a read-only or full disk leaves the compile
    correct, only slower next time."""
    try:
        pkey = _pack_key(ikey, probes)
        d = _builds(cache_dir)
        head = {**index, "format": CACHE_FORMAT, "envs": envs}
        write_atomic(d / f"pack-{pkey}.bin",
                     json.dumps(head, sort_keys=True, separators=(",", ":")).encode() + b"\n" + blob)
        # One inputs key can have met several states of the files it names (a config.json
        # edited and reverted): keep the last few, newest first.
        entries = [{"probes": probes, "pack": pkey}]
        try:
            old = json.loads((d / f"in-{ikey}.json").read_bytes())
            entries += [e for e in old.get("entries", []) if e.get("pack") != pkey][:7]
        except (OSError, ValueError, AttributeError):
            pass
        write_atomic(d / f"in-{ikey}.json", json.dumps({"format": CACHE_FORMAT, "entries": entries},
                                                       sort_keys=True).encode())
        _prune(d)
    except OSError:
        return


def prune(cache_dir: Path, budget: int) -> None:
    """Keep the builds within `budget` bytes (the compile passes twice its build output): the
    newest pack always, as it is (the next compile's emission cache reads it); older ones
    compressed, newest first, only while the total stays in budget."""
    try:
        shutil.rmtree(Path(cache_dir) / "emit", ignore_errors=True)  # the per-entry cache of CACHE_FORMAT 2
        d = _builds(cache_dir)
        used = sum(p.stat().st_size for p in d.glob("in-*.json"))
        for i, p in enumerate(_packs(d)):
            if i > 0 and p.suffix == ".bin":
                # An older build (a revert or a branch switch may ask for it again) is kept
                # compressed: ~5x smaller, read back in tens of milliseconds.
                z = p.with_name(p.name + ".z")
                st = p.stat()
                write_atomic(z, zlib.compress(p.read_bytes(), 1))
                os.utime(z, ns=(st.st_atime_ns, st.st_mtime_ns))
                p.unlink()
                p = z
            size = p.stat().st_size
            if i == 0 or used + size <= budget:
                used += size
            else:
                p.unlink(missing_ok=True)
    except (OSError, zlib.error):
        return


def _packs(d: Path) -> list[Path]:
    """Stored builds, newest first."""
    return sorted(d.glob("pack-*.bin*"), key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def _read_pack(p: Path) -> CachedRecord | None:
    raw = p.read_bytes()
    if p.suffix == ".z":
        raw = zlib.decompress(raw)
    i = raw.index(b"\n")
    index = json.loads(raw[:i])
    if index.get("format") != CACHE_FORMAT:
        return None
    return CachedRecord(index["envs"], index, raw[i + 1:])


def latest(cache_dir: Path) -> CachedRecord | None:
    """The newest stored build (the emission cache of the next compile), or None."""
    try:
        packs = _packs(_builds(cache_dir))
        return _read_pack(packs[0]) if packs else None
    except (OSError, ValueError, KeyError, TypeError, zlib.error):
        return None


def _prune(d: Path) -> None:
    packs = _packs(d)
    for p in packs[KEEP_PACKS:]:
        p.unlink(missing_ok=True)
    ins = sorted(d.glob("in-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for p in ins[KEEP_PACKS * 2:]:
        p.unlink(missing_ok=True)


@dataclass
class CachedRecord:
    """A stored build record: its environments, index and bytes (`Build.from_record` makes
    the build of it)."""

    envs: list[str]
    index: dict
    blob: bytes


def lookup(cache_dir: Path, root: Path, ikey: str) -> CachedRecord | None:
    d = _builds(cache_dir)
    try:
        pointer = json.loads((d / f"in-{ikey}.json").read_bytes())
        if pointer.get("format") != CACHE_FORMAT:
            return None
        for entry in pointer["entries"]:
            probes = entry["probes"]
            if all(_probe(root, rel) == want for rel, want in probes.items()):
                break
        else:
            return None
        pkey = entry["pack"]
        if pkey != _pack_key(ikey, probes):
            return None
        p = d / f"pack-{pkey}.bin"
        return _read_pack(p if p.exists() else p.with_name(p.name + ".z"))
    except (OSError, ValueError, KeyError, TypeError, zlib.error):
        return None


@dataclass
class FastResult:
    root: Path
    cached: CachedRecord


def fast_compile(path: str | Path = ".", envs: Iterable[str] | None = None) -> FastResult | None:
    """The whole-repo fast path: the last build of exactly these inputs, or None (then load,
    resolve and compile as usual; compile_repo stores the result for next time)."""
    root = find_root(Path(path))
    if root is None:
        return None
    rels = discover(root)
    if rels is None:
        return None
    files: dict[str, bytes] = {}
    try:
        for rel in rels:
            files[rel] = read_regular(root / rel, MAX_FILE_BYTES)
    except (OSError, ReadRefused):
        return None  # the slow path reports it
    _, ignore_raw = _patterns(root)
    envs = sorted(set(envs)) if envs else None
    hit = lookup(cache_dir_of(root), root, inputs_key(files, envs, ignore_raw, lock_bytes(root)))
    return FastResult(root, hit) if hit is not None else None


def ignore_bytes(root: Path) -> bytes:
    return _patterns(root)[1]
