"""Writing a build tree to disk, and `compile --check` (standard library only)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from specops.build.manifest import MANIFEST
from specops.fsio import write_atomic


def _same(path: str, data: bytes) -> bool:
    # One open and one read per file (no stat, no Path objects): the no-op recompile of a
    # 1,000-spec repo compares ~2,000 files, and this is most of its time.
    try:
        with open(path, "rb", buffering=0) as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def write_build(files: dict[str, bytes], out: Path) -> tuple[int, int]:
    """Write the build tree; remove files the previous manifest listed that are gone now.
    Returns (written, removed). Unchanged files are not rewritten (mtimes stay)."""
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


def _write_fresh(files: dict[str, bytes], out: Path) -> bool:
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


def stale_files(files: dict[str, bytes], out: Path) -> list[str]:
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
