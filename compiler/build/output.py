"""Writing a build tree to disk, and `compile --check` (standard library only).

The tree record (`tree_current`, `record_tree`): after writing a build folder, each file's
size, mtime, ctime and inode are recorded beside the manifest's sha256 (in the repo's cache,
`builds/tree.json`). A later compile of a build with the same manifest trusts a file whose
stat is exactly as recorded instead of reading it back: rewriting a file in place moves its
ctime (which, unlike the mtime, no one can set back: `touch -d` and `os.utime` move it too),
replacing it moves its inode. As git does with its index ("racily clean"), a file whose
ctime is not older than the record itself (the record file's mtime, stamped by the same
file system) could have been changed in the same clock tick after it was recorded, so it is
compared by content instead (its sha256 against the manifest's). Not covered, as in git and
make: the system clock set back between runs, and a writer racing the compile itself. The
record is used only when the build folder and the cache are on one file system (one clock).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from specops.build.manifest import MANIFEST
from specops.fsio import ReadRefused, read_regular, write_atomic

TREE_FORMAT = 1
# The biggest tree record read (~70 bytes a file: ~1.6 MB at 10,000 specs).
MAX_TREE_BYTES = 256 << 20


def _same(path: str, data: bytes) -> bool:
    # One open and one read per file (no stat, no Path objects): the no-op recompile of a
    # 1,000-spec repo compares ~2,000 files, and this is most of its time.
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def write_build(files: Mapping[str, bytes], out: Path, record: Path | None = None) -> tuple[int, int]:
    """Write the build tree; remove files the previous manifest listed that are gone now.
    Returns (written, removed). Unchanged files are not rewritten (mtimes stay). With
    `record` (the tree record's path), a folder the record shows to hold this build already
    is not read at all, and the record is made anew after writing."""
    sha = hashlib.sha256(files[MANIFEST]).hexdigest() if record is not None and MANIFEST in files else None
    if sha is not None and record is not None and tree_current(out, sha, record):
        return 0, 0
    done = _write_build(files, Path(out))
    if sha is not None and record is not None:
        record_tree(out, files, sha, record)
    return done


def _write_build(files: Mapping[str, bytes], out: Path) -> tuple[int, int]:
    if not os.path.lexists(out) and _write_fresh(files, Path(out)):
        return len(files), 0
    old = _previous_paths(out)
    written = 0
    prefix = f"{out}{os.sep}"
    for rel, data in files.items():
        if _same(prefix + rel, data):
            continue
        write_atomic(out / rel, data)
        written += 1
    removed = 0
    for rel in sorted(old - set(files)):
        p = out / rel
        if p.is_file():
            p.unlink()
            removed += 1
    return written, removed


def _write_fresh(files: Mapping[str, bytes], out: Path) -> bool:
    """A build directory that does not exist yet is written whole into a fresh sibling
    folder, then renamed into place: a reader sees no directory or the complete one, as with
    one atomic write per file, without a temp file and a rename for each of thousands of
    artifacts. False (nothing left behind) when that cannot be done; the caller then writes
    file by file."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError:
        return False
    try:
        made = {str(tmp)}
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        for rel, data in files.items():
            path = f"{tmp}{os.sep}{rel}"
            parent = os.path.dirname(path)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            fd = os.open(path, flags, 0o600)  # as write_atomic's temp files are
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it private; the build folder is not
        os.rename(tmp, out)  # fails if `out` appeared meanwhile (and is not an empty folder)
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def stale_files(files: Mapping[str, bytes], out: Path) -> list[str]:
    """What `compile --check` reports: files that differ, are missing, or should be gone."""
    problems = []
    prefix = f"{out}{os.sep}"
    for rel, data in files.items():
        if _same(prefix + rel, data):
            continue
        problems.append(f"{rel} (differs)" if (out / rel).is_file() else f"{rel} (missing)")
    old = _previous_paths(out)
    problems.extend(f"{rel} (no longer produced)" for rel in sorted(old - set(files)) if (out / rel).exists())
    return problems


def _previous_paths(out: Path) -> set[str]:
    """The artifact paths the build directory's current manifest lists (empty if none)."""
    mf = out / MANIFEST
    if not mf.is_file():
        return set()
    try:
        return {a["path"] for a in json.loads(mf.read_text()).get("artifacts", [])}
    except (ValueError, KeyError, TypeError):
        return set()


# ---- the tree record ---------------------------------------------------------------------------


def _row(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def record_tree(out: Path, rels: Iterable[str], manifest_sha: str, record: Path) -> None:
    """Record the stat of every file of the build just written into `out` (see the module's
    docstring). Best effort: without a record the next compile compares bytes."""
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        dev = os.stat(record.parent).st_dev
        prefix = f"{out}{os.sep}"
        files = {}
        for rel in rels:
            st = os.lstat(prefix + rel)
            if st.st_dev != dev or not stat.S_ISREG(st.st_mode):
                record.unlink(missing_ok=True)
                return
            files[rel] = _row(st)
        write_atomic(record, json.dumps({"format": TREE_FORMAT, "out": os.path.realpath(out), "manifest": manifest_sha,
                                         "files": files}, separators=(",", ":")).encode())
    except OSError:
        return


def tree_current(out: Path, manifest_sha: str, record: Path, refresh: bool = True) -> bool:
    """Whether the build folder `out` holds exactly the build whose manifest has this sha256,
    judged by the tree record (stat, and the content of files too recent to trust by stat).
    With `refresh`, a record that had such files is made anew, so the next run trusts them."""
    try:
        st = os.stat(record)  # before reading it: a record replaced meanwhile is newer, its files trusted less
        rec = json.loads(read_regular(record, MAX_TREE_BYTES))
        if rec.get("format") != TREE_FORMAT or rec.get("manifest") != manifest_sha \
                or rec.get("out") != os.path.realpath(out):
            return False
        ref, dev = st.st_mtime_ns, st.st_dev
        prefix = f"{out}{os.sep}"
        racy = []
        for rel, row in rec["files"].items():
            s = os.lstat(prefix + rel)
            if s.st_dev != dev or not stat.S_ISREG(s.st_mode):
                return False
            if s.st_ctime_ns >= ref:
                racy.append(rel)
            elif [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino] != row:
                return False
        if racy:
            if not _same_content(out, racy, manifest_sha):
                return False
            if refresh:
                record_tree(out, rec["files"], manifest_sha, record)
        return True
    except (OSError, ReadRefused, ValueError, KeyError, TypeError, AttributeError):
        return False


def _same_content(out: Path, rels: list[str], manifest_sha: str) -> bool:
    """Every file in `rels` holds the bytes the build folder's manifest gives for it, and the
    manifest is the one with this sha256."""
    raw = read_regular(out / MANIFEST, MAX_TREE_BYTES)
    if hashlib.sha256(raw).hexdigest() != manifest_sha:
        return False
    want = {a["path"]: a["sha256"] for a in json.loads(raw)["artifacts"]}
    prefix = f"{out}{os.sep}"
    for rel in rels:
        if rel == MANIFEST:
            continue
        try:
            if hashlib.sha256(read_regular(prefix + rel, MAX_TREE_BYTES)).hexdigest() != want.get(rel):
                return False
        except (OSError, ReadRefused):
            return False
    return True
