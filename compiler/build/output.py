"""Writing a build tree to disk, and `compile --check` (standard library only).

The tree record (`tree_current`, `record_tree`): after writing a build folder, each file's
size, mtime, ctime and inode are recorded beside the manifest's sha256 (in the repo's cache,
`builds/tree.json`). A later compile of a build with the same manifest trusts a file whose
stat is exactly as recorded instead of reading it back: rewriting a file in place moves its
ctime (which, unlike the mtime, no one can set back: `touch -d` and `os.utime` move it too),
replacing it moves its inode. As git does with its index ("racily clean"), a file whose
ctime is not older than the record itself (the record file's mtime, stamped by the same
file system) could have been changed in the same clock tick after it was recorded, so it is
compared by content instead (its sha256 against the record's). Not covered, as in git and
make: the system clock set back between runs, and a writer racing the compile itself. The
record is used only when the build folder and the cache are on one file system (one clock).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from specops.build.manifest import MANIFEST
from specops.fsio import ReadRefused, read_regular, write_atomic

TREE_FORMAT = 2
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


def write_build(files: Mapping[str, bytes], out: Path, record: Path | None = None,
                shas: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Write the build tree; remove files the previous manifest listed that are gone now.
    Returns (written, removed). Unchanged files are not rewritten (mtimes stay).

    With `record` (the tree record's path): a folder the record shows to hold this build
    already is not read at all; otherwise a file whose recorded sha256 is the new one's and
    whose stat is as recorded is not read either (an edit rewrites a handful of the 22,849
    files of a 10,000-spec build), and the record is made anew after writing. `shas` gives
    the files' sha256 (Build.shas: known without reading them); any missing is computed."""
    if record is None:
        return _write_build(files, Path(out), None, None)
    known = dict(shas or {})

    def sha(rel: str) -> str:
        got = known.get(rel)
        if got is None:
            got = known[rel] = hashlib.sha256(files[rel]).hexdigest()
        return got

    manifest_sha = sha(MANIFEST)
    tree = _read_tree(out, record)
    if tree is not None and tree.manifest == manifest_sha and _tree_holds(out, tree, record):
        return 0, 0
    trusted: dict[str, list[int]] = {}
    done = _write_build(files, Path(out), tree, sha, trusted)
    record_tree(out, {rel: sha(rel) for rel in files}, manifest_sha, record, trusted)
    return done


def _write_build(files: Mapping[str, bytes], out: Path, tree: _Tree | None,
                 sha: Callable[[str], str] | None, trusted: dict[str, list[int]] | None = None) -> tuple[int, int]:
    """write_build's work; `trusted` gets the record's row of each file it left alone on the
    record's word (the new record takes them as they are: no second stat)."""
    if not os.path.lexists(out) and _write_fresh(files, Path(out)):
        return len(files), 0
    prefix = f"{out}{os.sep}"
    old: set[str] | None = None
    old_shas: dict[str, str] = {}
    if tree is not None:
        old_shas = tree.shas()
        if tree.trusts(prefix, MANIFEST):  # the folder's manifest is the recorded build's
            old = set(tree.rows) - {MANIFEST}
    if old is None:
        old = _previous_paths(out)
    written = 0
    for rel in files:
        if sha is not None and old_shas.get(rel) == sha(rel) and tree is not None and tree.trusts(prefix, rel):
            if trusted is not None:
                trusted[rel] = tree.rows[rel]
            continue
        data = files[rel]
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
    import shutil  # here, not at the top: the no-op compile never needs it (start-up, see compile_cmd)
    import tempfile

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
#
# `tree.json`: a JSON line {format, out, manifest (its sha256), files: {path: [size, mtime_ns,
# ctime_ns, inode]}}, then a JSON line {path: sha256} (read only when a file must be judged
# one by one: a no-op whose folder is current parses the first line alone).


@dataclass
class _Tree:
    """A tree record as read: its stat rows and manifest sha256; `ref` and `dev` are the
    record file's own mtime and device (the clock and file system its rows are judged by)."""

    rows: dict[str, list[int]]
    manifest: str
    ref: int
    dev: int
    _shas: bytes

    def shas(self) -> dict[str, str]:
        got = json.loads(self._shas)
        return got if isinstance(got, dict) else {}

    def judge(self, prefix: str, rel: str) -> bool | None:
        """True when the file's stat is as recorded and older than the record, None when it
        is as recorded but too recent to trust (racily clean), False otherwise."""
        row = self.rows.get(rel)
        try:
            s = os.lstat(prefix + rel)
        except OSError:
            return False
        if row is None or s.st_dev != self.dev or not stat.S_ISREG(s.st_mode) \
                or [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino] != row:
            return False
        return True if s.st_ctime_ns < self.ref else None

    def trusts(self, prefix: str, rel: str) -> bool:
        return self.judge(prefix, rel) is True


def _read_tree(out: Path, record: Path) -> _Tree | None:
    try:
        st = os.stat(record)  # before reading it: a record replaced meanwhile is newer, its files trusted less
        raw = read_regular(record, MAX_TREE_BYTES)
        nl = raw.index(b"\n")
        head = json.loads(raw[:nl])
        if head.get("format") != TREE_FORMAT or head.get("out") != os.path.realpath(out) \
                or not isinstance(head.get("files"), dict):
            return None
        return _Tree(head["files"], head["manifest"], st.st_mtime_ns, st.st_dev, raw[nl + 1:])
    except (OSError, ReadRefused, ValueError, KeyError, TypeError, AttributeError):
        return None


def _row(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def record_tree(out: Path, shas: Mapping[str, str], manifest_sha: str, record: Path,
                known: Mapping[str, list[int]] | None = None) -> None:
    """Record the stat and sha256 of every file of the build just written into `out` (see
    the module's docstring); `known` gives rows just judged against the last record (kept
    as they are). Best effort: without a record the next compile compares bytes."""
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        dev = os.stat(record.parent).st_dev
        prefix = f"{out}{os.sep}"
        files = {}
        known = known or {}
        for rel in shas:
            row = known.get(rel)
            if row is not None:
                files[rel] = row
                continue
            st = os.lstat(prefix + rel)
            if st.st_dev != dev or not stat.S_ISREG(st.st_mode):
                record.unlink(missing_ok=True)
                return
            files[rel] = _row(st)
        head = {"format": TREE_FORMAT, "out": os.path.realpath(out), "manifest": manifest_sha, "files": files}
        write_atomic(record, (json.dumps(head, separators=(",", ":")).encode(), b"\n",
                              json.dumps(dict(shas), separators=(",", ":")).encode()))
    except OSError:
        return


def tree_current(out: Path, manifest_sha: str, record: Path, refresh: bool = True) -> bool:
    """Whether the build folder `out` holds exactly the build whose manifest has this sha256,
    judged by the tree record (stat, and the content of files too recent to trust by stat).
    With `refresh`, a record that had such files is made anew, so the next run trusts them."""
    tree = _read_tree(out, record)
    return tree is not None and tree.manifest == manifest_sha and _tree_holds(out, tree, record, refresh)


def _tree_holds(out: Path, tree: _Tree, record: Path, refresh: bool = True) -> bool:
    prefix = f"{out}{os.sep}"
    racy = []
    for rel in tree.rows:
        got = tree.judge(prefix, rel)
        if got is False:
            return False
        if got is None:
            racy.append(rel)
    if racy:
        shas = tree.shas()
        for rel in racy:
            try:
                if hashlib.sha256(read_regular(prefix + rel, MAX_TREE_BYTES)).hexdigest() != shas.get(rel):
                    return False
            except (OSError, ReadRefused):
                return False
        if refresh:
            record_tree(out, shas, tree.manifest, record)
    return True
