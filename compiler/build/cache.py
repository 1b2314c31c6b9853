"""Incremental compile: a content-addressed build cache under `<root>/.specops/cache/builds/`.

Format (CACHE_FORMAT 5). Two kinds of file (and the inputs' `stat.json`, see below):

- `in-<inputs key>.json`: `{"entries": [{probes, pack}]}`, newest first: what a compile of
  exactly these YAML inputs also read from the repo (the "probes": `{path: sha256 | "dir"}`:
  model `config.json` files, dataset `file://` paths, base-model folders, and per model folder
  `<folder>/*.safetensors`: the digest of its weights' headers and shard index) and the key
  of the pack it produced.
- `pack-<pack key>.bin`: a JSON line and two marshal records (each ended by a newline: "lines"
  2 and 3), then the artifact bytes. Line 1, the head: what a
  no-op compile reads when the build folder is current (envs, the manifest's byte range and
  sha256, the artifact count, the build's diagnostics, the byte lengths of lines 2 and 3).
  Line 2: the artifacts with their manifest fields and byte ranges, and the specs index
  (read when the build is made of the pack: an edit, a changed build folder). Line 3: the
  emission index (which artifacts each pipeline's or serving target's emission key
  produced, the next compile's emission cache, see compile.EmitCache) and the dependency
  index (what each unit of the reference graph produced, see units.py). Only the newest
  pack stays as it is; older ones are zlib-compressed (`.bin.z`) and kept while the cache
  stays within twice the build output and they are small enough to compress cheaply (`prune`).

The inputs key is the sha256 of: the cache format, the specops version, a content hash of the
specops code itself (compiler, backends, specs, templates: a backend upgrade or a local edit
invalidates everything, so output never goes stale), the environments asked for, and every
discovered YAML file with the sha256 of its bytes (plus `.specopsignore`). The pack key adds
the probes' hashes. Only builds without errors are stored, so a hit reproduces exactly what
a full compile would: the same artifacts, byte for byte, and the same warnings.

`fast_compile(path, envs)` is the whole-repo fast path: it keys the inputs without parsing
anything (no pydantic, no YAML), and returns the last build when nothing changed. Like the
validate cache (checkcache.py) it stats every YAML file first and reads and hashes only those
whose size or mtime moved since the last run, or whose mtime was too close to that run to be
trusted (`stat.json`: each file's size, mtime and sha256). The newest pack is read lazily by
the next compile (`latest_view`): the artifacts an edit does not reach are read from it one
by one, never the whole pack at once.
This module imports only the standard library at top level, so the CLI can call it first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import marshal
import os
import stat
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from specops import __version__
from specops.fsio import ReadRefused, read_regular, weights_digest, write_atomic
from specops.paths import (
    IGNORE_FILE,
    MAX_FILE_BYTES,
    MAX_IGNORE_BYTES,
    discover_traced,
    find_root,
    repo_cache_dir,
    top_entries,
    user_cache_dir,
)
from specops.paths import discover as _discover
from specops.paths import ignore_patterns as _patterns
from specops.resolve.lockfile import lock_bytes

CACHE_FORMAT = 8  # 2: artifacts carry role, resource and file; 3: the emission index; 4: the unit index;
# 5: those two indexes on a second line; 6: a head line before the artifacts' line; 7: lines 2, 3 marshal; 8: paths the specs name that do not exist are probes too
# A pack's index lines after the head: what making the build of it reads (line 2), and what
# only the next compile reads (line 3).
BUILD_KEYS = ("artifacts", "specs")
INCREMENTAL_KEYS = ("emit", "units", "inputs")
KEEP_PACKS = 16  # older packs are pruned after a store; each is one build of the repo
# An older pack is compressed (and kept for a revert) only up to this size; a bigger one is
# dropped. Compressing is paid by the next compile: 0.4 s of a one-spec edit at 10,000 specs
# (a 139 MB pack), more than an edit that reverts saves by a hit (the incremental compile
# redoes a revert at the cost of an edit). At 1,000 specs (14 MB) it is about 40 ms.
MAX_COMPRESS_BYTES = 32 << 20

_CODE_FP: str | None = None


def cache_dir_of(root: Path) -> Path:
    return repo_cache_dir(root)


def _builds(cache_dir: Path) -> Path:
    return Path(cache_dir) / "builds"


def tree_record(root: Path) -> Path:
    """Where the stat record of the build folder last written lives (see output.py)."""
    return _builds(cache_dir_of(root)) / "tree.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_fingerprint() -> str:
    """sha256 over the specops package's own files (code, templates, flag lists, schemas).
    Taken from the last run's record (the user's cache, per install) when every folder and
    file of the package has the stat recorded then, and is old enough to trust (as the
    inputs' stat record is); computed, and recorded, otherwise."""
    global _CODE_FP
    if _CODE_FP is not None:
        return _CODE_FP
    head = f"specops {__version__} cache {CACHE_FORMAT}\n"
    roots = _code_roots()
    record = user_cache_dir() / f"code-{_sha(os.fsencode(roots[0]))[:16]}.json"
    _CODE_FP = _recorded_code_fp(record, head, roots)
    if _CODE_FP is None:
        started = time.time_ns()
        files, dirs = _code_tree(roots)
        h = hashlib.sha256(head.encode())
        for rel, p in files:
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            h.update(f"{rel}\0{_sha(data)}\n".encode())
        _CODE_FP = h.hexdigest()
        stats = {}
        for p in [p for _, p in files] + dirs:
            try:
                st = os.stat(p)
            except OSError:
                return _CODE_FP  # gone meanwhile: not recorded
            stats[p] = _code_row(st)
        try:
            write_atomic(record, json.dumps({"head": head, "roots": roots, "stored_ns": started, "fp": _CODE_FP,
                                             "stats": stats}, separators=(",", ":")).encode())
        except OSError:
            pass  # an unwritable home: computed again next time
    return _CODE_FP


def _code_row(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino] if stat.S_ISREG(st.st_mode) \
        else [-1, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _recorded_code_fp(record: Path, head: str, roots: list[str]) -> str | None:
    try:
        rec = json.loads(read_regular(record, MAX_STAT_BYTES))
        if rec["head"] != head or rec["roots"] != roots:
            return None
        trusted_before = rec["stored_ns"] - RACY_NS
        for p, row in rec["stats"].items():
            st = os.stat(p)
            if st.st_ctime_ns >= trusted_before or _code_row(st) != row:
                return None
        return rec["fp"] if isinstance(rec["fp"], str) else None
    except (OSError, ReadRefused, ValueError, KeyError, TypeError):
        return None


def _code_roots() -> list[str]:
    """The specops package's folder, and the folders installed into it (backends, specs,
    templates) wherever they are."""
    roots = [Path(__file__).resolve().parents[1]]
    for sub in ("backends", "specs", "templates"):
        spec = importlib.util.find_spec(f"specops.{sub}")
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p).resolve() for p in spec.submodule_search_locations)
    return [str(roots[0])] + sorted({str(r) for r in roots[1:]} - {str(roots[0])})


def _code_tree(roots: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """((name, path) of every file of the package, every folder walked)."""
    out, dirs = [], []
    for base in sorted(roots):
        parent = os.path.dirname(base)
        for dirpath, dirnames, filenames in os.walk(base):
            dirs.append(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
            for fn in sorted(filenames):
                if not fn.endswith((".pyc", ".tmp")):
                    p = os.path.join(dirpath, fn)
                    out.append((os.path.relpath(p, parent), p))
    return out, dirs


def code_files() -> list[tuple[str, str]]:
    """(name, path) of every file of the specops package: the whole package (lowering,
    checks and the loader shape the output as much as the backends do; this module's own
    folder alone once stood for it), and the folders installed into it (backends, specs,
    templates) wherever they are."""
    return _code_tree(_code_roots())[0]


# ---- discovery without the loader ---------------------------------------------------------




def discover(root: Path) -> list[str] | None:
    """The YAML files the loader would read, or None where it would report a problem (an
    unreadable folder, a symlink leaving the repo): the slow path then reports it."""
    files, problems = _discover(root)
    return None if problems else files


# ---- keys ----------------------------------------------------------------------------------


def file_shas(files: dict[str, bytes]) -> dict[str, str]:
    """Each file's sha256 (hex)."""
    return {rel: _sha(raw) for rel, raw in files.items()}


def inputs_key(files: dict[str, bytes], envs: Iterable[str] | None, ignore_raw: bytes = b"",
               lock_raw: bytes = b"", shas: dict[str, str] | None = None) -> str:
    return _inputs_key(shas if shas is not None else file_shas(files), envs, ignore_raw, lock_raw)


def _inputs_key(shas: dict[str, str], envs: Iterable[str] | None, ignore_raw: bytes, lock_raw: bytes) -> str:
    """inputs_key from each YAML file's sha256 (hex)."""
    h = hashlib.sha256(f"{code_fingerprint()}\nenvs={','.join(sorted(envs)) if envs else '*'}\n".encode())
    h.update(b"ignore\0" + _sha(ignore_raw).encode() + b"\n")
    # specops.lock pins reach the data_check steps' params: a re-lock is a new input.
    h.update(b"lock\0" + _sha(lock_raw).encode() + b"\n")
    for rel in sorted(shas):
        h.update(f"{rel}\0{shas[rel]}\n".encode())
    return h.hexdigest()


# ---- the inputs' stat record: size and mtime first, as the validate cache does ----------------

STAT_RECORD = "stat.json"
# A file whose mtime is this close to the record's making is hashed, not trusted by its stat:
# it could change again within the clock tick without its mtime moving (git's "racily clean").
RACY_NS = 2_000_000_000


def stat_trusted(st: os.stat_result, size: int, mtime_ns: int, trusted_before: int) -> bool:
    """A regular file whose stat still says what a record wrote down (size, mtime) and whose
    mtime is older than `trusted_before` (the record's time less RACY_NS: git's racily-clean
    rule) is taken as unchanged without reading it."""
    return (st.st_size == size and st.st_mtime_ns == mtime_ns and st.st_mtime_ns < trusted_before
            and stat.S_ISREG(st.st_mode))


# ~130 bytes a file: 1.3 MB at 10,000 specs.
MAX_STAT_BYTES = 256 << 20


def _ignore_raw(root: Path) -> bytes | None:
    """The bytes of `.specopsignore` (b"" when there is none), None when it cannot be read."""
    f = root / IGNORE_FILE
    if not os.path.lexists(f):
        return b""
    try:
        return read_regular(f, MAX_IGNORE_BYTES)
    except (OSError, ReadRefused):
        return None


def _dirs_unchanged(root: Path, dirs: Any, top: Any, trusted_before: int) -> bool:
    """Every folder discovery listed last time has the inode and ctime recorded then, and
    that ctime is old enough to trust (a folder changed in the record's clock tick is not);
    the repo folder itself, by its listing (paths.top_entries)."""
    if not isinstance(dirs, dict):
        return False
    try:
        if top_entries(root) != top:
            return False
    except OSError:
        return False
    base = str(root)
    for rel, (ino, ctime) in dirs.items():
        try:
            st = os.stat(f"{base}/{rel}")
        except OSError:
            return False
        if st.st_ino != ino or st.st_ctime_ns != ctime or ctime >= trusted_before or not stat.S_ISDIR(st.st_mode):
            return False
    return True


def _input_shas(root: Path) -> tuple[dict[str, str], bytes] | None:
    """Every YAML input's sha256, and the bytes of `.specopsignore`. A file's sha256 comes from
    the last record when its size and mtime did not move (and were not racy); it is read and
    hashed otherwise. Discovery itself is skipped when every folder it listed last time is
    as recorded (and not racy): no entry was added, removed or renamed in any of them, so
    the recorded files are the inputs (a repo with a symlink is always walked: its target
    can change under an unchanged folder). The record is rewritten when anything had to be
    hashed or walked. None when a file cannot be read or discovery meets a problem (the
    slow path reports it)."""
    path = _builds(cache_dir_of(root)) / STAT_RECORD
    try:
        rec = json.loads(read_regular(path, MAX_STAT_BYTES))
        old, trusted_before = rec["files"], rec["stored_ns"] - RACY_NS
        old_dirs, old_top, old_ignore = rec.get("dirs"), rec.get("top"), rec.get("ignore")
        if rec.get("format") != CACHE_FORMAT or not isinstance(old, dict):
            old, old_dirs = {}, None
    except (OSError, ReadRefused, ValueError, KeyError, TypeError):
        old, old_dirs, old_top, old_ignore, trusted_before = {}, None, None, None, 0
    ignore_raw = _ignore_raw(root)
    if ignore_raw is None:
        return None
    ignore_sha = _sha(ignore_raw)
    started = time.time_ns()  # before any folder is looked at: what changes after is racy
    walked = not (old_dirs is not None and old_ignore == ignore_sha
                  and _dirs_unchanged(root, old_dirs, old_top, trusted_before))
    new_dirs, new_top = old_dirs, old_top
    if walked:
        try:
            new_top = top_entries(root)  # before the walk: what changes after it is seen next time
        except OSError:
            return None
        rels, problems, dirs, links = discover_traced(root)
        if problems:
            return None
        new_dirs = None if links else {d: [st.st_ino, st.st_ctime_ns] for d, st in dirs.items() if d}
    else:
        rels = list(old)
    shas: dict[str, str] = {}
    new: dict[str, list] = {}
    hashed = False
    prefix = f"{root}{os.sep}"
    for rel in rels:
        full = prefix + rel
        try:
            st = os.stat(full)
        except OSError:
            return None
        r = old.get(rel)
        if isinstance(r, list) and len(r) == 3 and stat_trusted(st, r[0], r[1], trusted_before):
            sha = r[2]
        else:
            try:
                sha = _sha(read_regular(full, MAX_FILE_BYTES))
            except (OSError, ReadRefused):
                return None
            hashed = True
        shas[rel] = sha
        new[rel] = [st.st_size, st.st_mtime_ns, sha]
    if hashed or len(old) != len(new) or (walked and new_dirs is not None):
        try:
            write_atomic(path, json.dumps({"format": CACHE_FORMAT, "stored_ns": started, "ignore": ignore_sha,
                                           "top": new_top, "dirs": new_dirs, "files": new},
                                          separators=(",", ":")).encode())
        except OSError:
            pass  # a read-only checkout: hashed again next time
    return shas, ignore_raw


# Probed files (data, model configs) up to this size are hashed; bigger ones by size and mtime.
MAX_PROBE_BYTES = 8 << 20


# The probe of a model folder's weights: what capacity planning reads of them (fsio.weights_digest).
WEIGHTS_PROBE = "/*.safetensors"


# The probe state of a path that does not exist (a broken link is not missing: "lexists").
MISSING = "missing"


def weights_state(root: Path, rel: str) -> str:
    """The state of a `<folder>/*.safetensors` probe: the digest of the weights' headers."""
    return "weights:" + (weights_digest(root / rel[: -len(WEIGHTS_PROBE)]) or "none")


def _probe(root: Path, rel: str) -> str | None:
    if rel.endswith(WEIGHTS_PROBE):
        return weights_state(root, rel)
    p = root / rel
    if not os.path.lexists(p):
        return MISSING
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


def _candidate(v: str) -> str | None:
    """`v` as a repo-relative path validate or a compile might look at, or None (a URL, an absolute path or
    one leaving the repo is judged without the file system)."""
    if not v or len(v) >= 1024 or "\n" in v or "\0" in v:
        return None
    rel = v.removeprefix("file://")
    if not rel or rel.startswith("/") or "://" in rel or ".." in rel.split("/"):
        return None
    rel = os.path.normpath(rel).replace(os.sep, "/")
    return None if rel in (".", "") else rel


def named_paths(specs_data: Iterable[Any]) -> list[str]:
    """Every string (value or key) in the specs that could name a repo path, deduplicated:
    what validate's record (checkcache) and a compile's probes (probes_of) stat."""
    seen: set[str] = set()
    add = seen.add
    stack = list(specs_data)
    push = stack.append
    # Type tests, no generators: this walks every value of every spec (a second of a 10k
    # validate when written with isinstance and extend). The dict and list branches stay
    # apart: one loop over `v.items() if dict else enumerate(v)` measured 7% slower.
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            for k, x in v.items():
                if type(k) is str:
                    add(k)
                tx = type(x)
                if tx is str:
                    add(x)
                elif tx is dict or tx is list:
                    push(x)
        elif t is list:
            for x in v:
                tx = type(x)
                if tx is str:
                    add(x)
                elif tx is dict or tx is list:
                    push(x)
        elif t is str:
            add(v)
    return sorted({c for v in seen if (c := _candidate(v)) is not None})


def probes_of(resolved: Any) -> dict[str, str]:
    """Repo files a compile may have looked at besides the YAML: every string in a spec that
    could name a path inside the repo (`file://` stripped), and `config.json` inside such
    folders with the weights' headers beside it (`<folder>/*.safetensors`). A path that does
    not exist is recorded as MISSING, so one created later (a local folder where a spec named
    a Hub model id, a config.json added to a model folder) is seen by the fast path too.
    Over-collecting costs a stat on the fast path (~1 us for a string that names nothing);
    missing one would be wrong."""
    root = resolved.repo.root
    real_root = os.path.realpath(root)
    out: dict[str, str] = {}
    for rel in named_paths(sp.doc.data for sp in resolved.repo.specs):
        full = os.path.join(root, rel)
        if not os.path.lexists(full):
            out[rel] = MISSING
            continue
        if os.path.commonpath([real_root, os.path.realpath(full)]) != real_root:
            continue
        got = _probe(root, rel)
        if got is not None:
            out[rel] = got
        if got == "dir":
            sub = f"{rel}/config.json"
            c = _probe(root, sub)
            if c is not None:
                out[sub] = c
            if c is not None and c != MISSING:
                # Capacity also counts from the weights' headers beside the config: probed
                # by their content (a header rewritten at the same size and mtime is seen),
                # and recorded when there are none (so weights added later are seen too).
                out[rel + WEIGHTS_PROBE] = _probe(root, rel + WEIGHTS_PROBE)  # type: ignore[assignment]
    return dict(sorted(out.items()))


def _pack_key(ikey: str, probes: dict[str, str]) -> str:
    return _sha((ikey + "\n" + json.dumps(probes, sort_keys=True)).encode())


# ---- store / load ----------------------------------------------------------------------------


def store(cache_dir: Path, ikey: str, probes: dict[str, str], envs: list[str], index: dict[str, Any],
          chunks: Iterable[bytes]) -> None:
    """Record a build (the build stage's `Build.to_record()`: a JSON-able index and the byte
    chunks it points into, end to end) under its keys. Best effort: a read-only or full disk
    leaves the compile correct, only slower next time."""
    try:
        pkey = _pack_key(ikey, probes)
        d = _builds(cache_dir)
        # Line 1: the head (what a no-op needs); line 2: the artifacts and specs (what the build
        # made of the pack needs); line 3: the emission and unit indexes (what the next compile
        # needs). The head gives the lengths of the other two, so a reader seeks past them.
        # Those two are marshal (plain data, as the loader's parse memo): a fifth of the
        # time of JSON to write and half to read, at 20 MB for 10,000 specs.
        lines = [marshal.dumps({k: index[k] for k in keys if k in index}) for keys in (BUILD_KEYS, INCREMENTAL_KEYS)]
        head = {**{k: v for k, v in index.items() if k not in BUILD_KEYS + INCREMENTAL_KEYS},
                "format": CACHE_FORMAT, "marshal": marshal.version, "envs": envs, "lines": [len(x) for x in lines]}
        write_atomic(d / f"pack-{pkey}.bin", itertools.chain(
            (json.dumps(head, sort_keys=True, separators=(",", ":")).encode(), b"\n",
             lines[0], b"\n", lines[1], b"\n"), chunks))
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
    compressed, newest first, only while the total stays in budget, and only up to
    MAX_COMPRESS_BYTES: a bigger one is dropped."""
    import shutil  # here, not at the top: the no-op compile never needs it (start-up, see compile_cmd)

    try:
        shutil.rmtree(Path(cache_dir) / "emit", ignore_errors=True)  # the per-entry cache of CACHE_FORMAT 2
        d = _builds(cache_dir)
        # Everything else in the cache counts against the budget too (the inputs' and build
        # folder's stat records, the parse memo, the checks' records): the bound is the folder's.
        used = sum(p.stat().st_size for p in Path(cache_dir).rglob("*")
                   if not p.name.startswith("pack-") and p.is_file())
        for i, p in enumerate(_packs(d)):
            if i > 0 and p.suffix == ".bin" and p.stat().st_size > MAX_COMPRESS_BYTES:
                p.unlink()
                continue
            if i > 0 and p.suffix == ".bin":
                # An older build (a revert or a branch switch may ask for it again) is kept
                # compressed: ~5x smaller, read back in tens of milliseconds. Streamed: the
                # pack is never whole in memory.
                z = p.with_name(p.name + ".z")
                st = p.stat()
                write_atomic(z, _compressed(p))
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


def _compressed(p: Path) -> Iterator[bytes]:
    """The file's bytes zlib-compressed (level 1), 1 MiB at a time."""
    c = zlib.compressobj(1)
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            yield c.compress(chunk)
    yield c.flush()


def _packs(d: Path) -> list[Path]:
    """Stored builds, newest first."""
    return sorted(d.glob("pack-*.bin*"), key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


class PackBlob:
    """A stored pack's bytes, read from its file when sliced (pread), never all at once:
    Build.from_record makes artifacts that read their bytes from it when asked for."""

    def __init__(self, f: Any, base: int, size: int):
        self._f, self._base, self._size = f, base, size

    def __len__(self) -> int:
        return self._size

    def read_range(self, off: int, size: int) -> bytes:
        if off < 0 or off + size > self._size:
            raise ValueError("outside the pack")
        data = os.pread(self._f.fileno(), size, self._base + off)
        if len(data) != size:
            raise OSError(f"{self._f.name}: short read")
        return data

    def __getitem__(self, s: slice) -> bytes:
        return self.read_range(s.start, s.stop - s.start)

    def where(self, off: int) -> tuple[Any, int]:
        """(the open pack file, the file offset of the blob's byte `off`)."""
        return self._f, self._base + off


def _open_pack(p: Path) -> tuple[dict[str, Any], Any, int] | None:
    """(the head line, the open file, the offset of the bytes), or None when the pack is not
    of this format or not whole. Lines 2 and 3 are not read (the head gives their lengths)."""
    f = open(p, "rb")  # noqa: SIM115 (open while its bytes are read)
    try:
        first = f.readline()
        head = json.loads(first)
        if head.get("format") != CACHE_FORMAT or head.get("marshal") != marshal.version:
            f.close()
            return None
        base = len(first) + sum(n + 1 for n in head["lines"])
        off, size = head["manifest"]
        if os.fstat(f.fileno()).st_size != base + off + size:  # truncated or grown: not this build's
            f.close()
            return None
        return head, f, base
    except BaseException:
        f.close()
        raise


def _read_pack(p: Path, incremental: bool = False, lazy: bool = False) -> CachedRecord | None:
    """A pack; its third line (the emission and unit indexes, which only the next compile
    reads) is parsed only with `incremental`: a no-op skips it, and its second line (the
    artifacts) until the record's `index` is asked for. With `lazy` an uncompressed pack's
    bytes stay in the file (a PackBlob), read when sliced."""
    if lazy and p.suffix == ".bin":
        opened = _open_pack(p)
        if opened is None:
            return None
        head, f, base = opened
        start, (n2, n3) = base - head["lines"][0] - head["lines"][1] - 2, head["lines"]
        line = lambda i: os.pread(f.fileno(), (n2, n3)[i], start + (0, n2 + 1)[i])
        rec = CachedRecord(head["envs"], head, PackBlob(f, base, sum(head["manifest"])), lambda: marshal.loads(line(0)))
        if incremental:
            rec.index.update(marshal.loads(line(1)))
        return rec
    raw = p.read_bytes()
    if p.suffix == ".z":
        raw = zlib.decompress(raw)
    i = raw.index(b"\n")
    head = json.loads(raw[:i])
    if head.get("format") != CACHE_FORMAT or head.get("marshal") != marshal.version:
        return None
    n2, n3 = head["lines"]
    j = i + 1 + n2 + 1  # where the third line starts
    rec = CachedRecord(head["envs"], head, raw[j + n3 + 1:], lambda: marshal.loads(raw[i + 1:i + 1 + n2]))
    if incremental:
        rec.index.update(marshal.loads(raw[j:j + n3]))
    return rec


def latest(cache_dir: Path) -> CachedRecord | None:
    """The newest stored build, its incremental indexes included, or None."""
    try:
        packs = _packs(_builds(cache_dir))
        return _read_pack(packs[0], incremental=True) if packs else None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error):
        return None


@dataclass
class PackView:
    """A stored build's index, and `read(offset, size)` of the bytes it points into."""

    index: dict
    read: Callable[[int, int], bytes]
    # (open file, offset) of a blob offset, for a pack read from its file (PackBlob.where)
    where: Callable[[int], tuple[Any, int]] | None = None


def latest_view(cache_dir: Path) -> PackView | None:
    """The newest stored build (the emission cache and dependency index of the next
    compile), or None. Its bytes are read from the file when asked for (pread), not loaded:
    an edit reuses most of the last build, but holding the whole pack beside the new build
    would double the compile's memory."""
    try:
        packs = _packs(_builds(cache_dir))
        if not packs:
            return None
        rec = _read_pack(packs[0], incremental=True, lazy=True)
        if rec is None:
            return None
        blob = rec.blob
        if isinstance(blob, PackBlob):
            return PackView(rec.index, blob.read_range, blob.where)
        return PackView(rec.index, lambda off, size: blob[off:off + size])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error):
        return None


def _prune(d: Path) -> None:
    packs = _packs(d)
    for p in packs[KEEP_PACKS:]:
        p.unlink(missing_ok=True)
    ins = sorted(d.glob("in-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for p in ins[KEEP_PACKS * 2:]:
        p.unlink(missing_ok=True)


class CachedRecord:
    """A stored build record: its environments, head (see the format above), and bytes (in
    memory, or a PackBlob that reads them from the pack); `index`, the head with the
    artifacts and specs (`Build.from_record` makes the build of it), is parsed when first
    asked for: a no-op whose build folder is current never needs it."""

    def __init__(self, envs: list[str], head: dict, blob: Any, more: Callable[[], dict]):
        self.envs, self.head, self.blob = envs, head, blob
        self._more: Callable[[], dict] | None = more

    @property
    def index(self) -> dict:
        if self._more is not None:
            self.head.update(self._more())
            self._more = None
        return self.head

    def build_index(self) -> dict | None:
        """`index`, or None when the pack's artifact index cannot be read (a damaged pack: the
        caller compiles as on a miss)."""
        try:
            index = self.index
            return index if isinstance(index.get("artifacts"), list) and isinstance(index.get("specs"), dict) else None
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None


def lookup(cache_dir: Path, root: Path, ikey: str, lazy: bool = False) -> CachedRecord | None:
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
        return _read_pack(p if p.exists() else p.with_name(p.name + ".z"), lazy=lazy)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error):
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
    got = _input_shas(root)
    if got is None:
        return None  # the slow path reports it
    shas, ignore_raw = got
    envs = sorted(set(envs)) if envs else None
    hit = lookup(cache_dir_of(root), root, _inputs_key(shas, envs, ignore_raw, lock_bytes(root)), lazy=True)
    return FastResult(root, hit) if hit is not None else None


def ignore_bytes(root: Path) -> bytes:
    return _patterns(root)[1]
