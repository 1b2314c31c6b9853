"""Where a spec repo is: the nearest directory holding specops.yaml.

Kept apart from the loader (which imports pydantic) so the no-op compile path can find the
repo without importing anything heavy.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Callable

from specops.fsio import ReadRefused, read_regular

PROJECT_FILE = "specops.yaml"
# A spec file bigger than this is refused unread (here, not in the YAML module, so the no-op
# paths that only hash files need not import a YAML parser).
MAX_FILE_BYTES = 1 << 20


def find_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding specops.yaml."""
    p = start.resolve()
    if p.is_file():
        p = p.parent
    for d in (p, *p.parents):
        if (d / PROJECT_FILE).is_file():
            return d
    return None


IGNORE_FILE = ".specopsignore"
# An ignore file holds a few patterns; anything bigger is not one.
MAX_IGNORE_BYTES = 1 << 20
# Never spec sources: VCS, specops's own state and build output, virtualenvs, hidden folders.
DEFAULT_IGNORES = (".git", ".specops", "build", "node_modules", ".venv*", ".*")


# One regex for all of them (fnmatch's own translation): discovery tests every entry of the
# repo, ~5,000 fnmatch calls at 1,000 specs on the no-op compile path.
_DEFAULT_RX = re.compile("|".join(fnmatch.translate(p) for p in DEFAULT_IGNORES))


def _default_ignored(rel: str) -> bool:
    # The defaults are bare names, which match at any depth in gitignore's semantics too.
    name = rel.rstrip("/").rsplit("/", 1)[-1]
    return _DEFAULT_RX.match(name) is not None


def ignore_patterns(root: Path) -> tuple[Callable[[str], bool], bytes]:
    """What not to read (a test on a repo-relative path, folders ending in `/`): the defaults
    plus `.specopsignore` with gitignore's semantics (pathspec: anchored `/x`, folder-only
    `x/`, `**`, `!` re-includes, `*` stopping at `/`), and the ignore file's bytes (part of
    the cache key). pathspec is imported only for a repo that has the file (start-up cost)."""
    f = root / IGNORE_FILE
    if not f.is_file():
        return _default_ignored, b""
    try:
        raw = read_regular(f, MAX_IGNORE_BYTES)
    except (OSError, ReadRefused):
        return _default_ignored, b""  # discover() reports it
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_IGNORES, *raw.decode("utf-8", errors="replace").splitlines()])
    return spec.match_file, raw


def discover(root: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Repo-relative posix paths of the YAML files to read (sorted), and the problems met as
    (path, diagnostic code, message). Symlinks leaving the repo are refused; symlinks inside
    it are skipped (their targets are read under their own paths, and directory links could
    loop). Special files named *.yaml are listed: reading them reports what they are."""
    files, problems, _, _ = discover_traced(root)
    return files, problems


def discover_traced(root: Path) -> tuple[list[str], list[tuple[str, str, str]], dict[str, os.stat_result], bool]:
    """discover(), and what its result depends on: the stat of every folder it listed, taken
    before listing it (a folder's ctime moves when an entry is added, removed or renamed, and
    when its permissions change), and whether it met a symlink (whose target can change
    without any folder changing). The build cache's stat record keeps them (cache.py)."""
    ignored, _ = ignore_patterns(root)
    real_root = os.path.realpath(root)
    out: list[str] = []
    problems: list[tuple[str, str, str]] = []
    dirs: dict[str, os.stat_result] = {}
    links = False
    ignore = root / IGNORE_FILE
    if os.path.lexists(ignore):
        try:
            read_regular(ignore, MAX_IGNORE_BYTES)
        except (OSError, ReadRefused) as e:
            problems.append((IGNORE_FILE, "file-read", f"cannot read {IGNORE_FILE}: {getattr(e, 'strerror', None) or e}"))
    base = str(root)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        full_dir = f"{base}/{rel_dir}" if rel_dir else base
        try:
            dirs[rel_dir] = os.stat(full_dir)
            entries = sorted(os.scandir(full_dir), key=lambda e: e.name)
        except OSError as e:
            problems.append((rel_dir or ".", "file-read", f"cannot read directory: {e.strerror}"))
            continue
        prefix = f"{rel_dir}/" if rel_dir else ""
        for e in entries:
            rel = prefix + e.name
            is_dir = e.is_dir(follow_symlinks=False)
            if ignored(rel + "/" if is_dir else rel):
                continue
            if e.is_symlink():
                links = True
                target = os.path.realpath(e.path)
                if os.path.commonpath([real_root, target]) != real_root and (
                        e.name.endswith((".yaml", ".yml")) or os.path.isdir(target)):
                    problems.append((rel, "path-escape", "symlink points outside the repository; refusing to follow it"))
                continue
            if is_dir:
                stack.append(rel)
            elif e.name.endswith((".yaml", ".yml")):
                out.append(rel)
    return sorted(out), problems, dirs, links


def top_entries(root: Path) -> list[str]:
    """The repo folder's own entries that discovery may look at (the default ignores left
    out: `build/` and `.specops/` come and go with every cold compile), each name with `/`
    for a folder and `@` for a symlink. The build cache's stat record compares this listing
    rather than the folder's ctime, which those two move."""
    with os.scandir(root) as it:
        return sorted(e.name + ("@" if e.is_symlink() else "/" if e.is_dir(follow_symlinks=False) else "")
                      for e in it if not _default_ignored(e.name))


def user_cache_dir() -> Path:
    """specops's per-user cache ($XDG_CACHE_HOME/specops, else ~/.cache/specops): for facts
    keyed by content alone (a model config's hash), which must not be written into the spec
    repo by read-only commands such as validate and diff."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "specops"


# ---- the repo's cache, trusted only when this machine wrote it ------------------------------
#
# `<root>/.specops/cache` holds build packs, validate records and the parse memo, which are
# replayed instead of recomputing. A pull-request author could commit crafted ones (their keys
# are computable from the code and the files), and CI would then print and deploy what they
# chose. So the folder carries a marker, an HMAC of its own path under a per-user key kept
# outside the repo; a cache without the right marker (committed, copied, or from another
# machine) is emptied before use. It only ever costs a recompute.
_CACHE_MARKER = "OWNER"
_TRUSTED: set[str] = set()
_KEY: bytes | None = None


def _machine_key() -> bytes:
    global _KEY
    if _KEY is None:
        path = user_cache_dir() / "cache.key"
        try:
            key = read_regular(path, 64)
        except (OSError, ReadRefused):
            key = b""
        if len(key) != 32:
            import secrets  # here, not at the top: made once per user (start-up, see compile_cmd)

            key = secrets.token_bytes(32)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
            except OSError:
                pass  # an unwritable home: this process's key only, so caches are rebuilt each run
        _KEY = key
    return _KEY


def repo_cache_dir(root: Path) -> Path:
    """`<root>/.specops/cache`, emptied first unless this user's key marked it (see above)."""
    d = Path(root) / ".specops" / "cache"
    if d.is_symlink():  # never followed: it could point anywhere the user can write
        try:
            d.unlink()
        except OSError:
            pass
    real = os.path.realpath(d)
    if real in _TRUSTED:
        return d
    want = hmac.new(_machine_key(), os.fsencode(real), hashlib.sha256).hexdigest().encode()
    try:
        have = read_regular(d / _CACHE_MARKER, 128)
    except (OSError, ReadRefused):
        have = b""
    if not hmac.compare_digest(have, want):
        try:
            if d.is_file():
                d.unlink()
            elif d.exists():
                import shutil  # here, not at the top: the no-op compile never needs it (start-up, see compile_cmd)

                shutil.rmtree(d)
            d.mkdir(parents=True, exist_ok=True)
            (d / _CACHE_MARKER).write_bytes(want)
        except OSError:
            pass  # a read-only checkout: nothing is written, and the lookups below miss
    _TRUSTED.add(real)
    return d
