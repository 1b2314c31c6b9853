"""Writing a build tree to disk, and `compile --check` (standard library only)."""

from __future__ import annotations

import json
import os
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
