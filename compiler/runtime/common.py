"""Shared helpers of the step runtime: strict params, repo-relative paths and URIs.

Stdlib only (plus fsspec, imported lazily, for remote URIs).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import IO, Any, Iterable

from specops.diagnostics import suggestion
from specops.fsio import sha256_file
from specops.runtime.errors import ParamError

_MISSING = object()


class Params:
    """Read a step's params strictly: unknown keys and wrong types are `ParamError`s.

    `where` prefixes every message ("train", "data_check: dataset.checks[2]").
    """

    def __init__(self, params: Any, where: str, allowed: Iterable[str]):
        if not isinstance(params, dict):
            raise ParamError(f"{where}: expected a mapping, got {type(params).__name__}")
        self.p = params
        self.where = where
        allowed = set(allowed)
        for key in sorted(params, key=str):
            if key not in allowed:

                raise ParamError(f"{where}: unknown param {key!r}{suggestion(str(key), allowed)}"
                                 f" (allowed: {', '.join(sorted(allowed))})")

    def error(self, key: str, msg: str) -> ParamError:
        return ParamError(f"{self.where}: param {key!r} {msg}")

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        v = self.p.get(key)
        if v is None:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        return v

    def str(self, key: str, default: Any = _MISSING, choices: Iterable[str] | None = None) -> Any:
        v = self.raw(key, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, str) or not v:
            raise self.error(key, f"must be a non-empty string, got {v!r}")
        if choices is not None:
            choices = list(choices)
            if v not in choices:

                raise self.error(key, f"must be one of {', '.join(choices)}, got {v!r}{suggestion(v, choices)}")
        return v

    def int(self, key: str, default: Any = _MISSING, minimum: int | None = None) -> Any:
        v = self.raw(key, default)
        if v is default and default is not _MISSING:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"must be an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be >= {minimum}, got {v}")
        return v

    def float(self, key: str, default: Any = _MISSING, minimum: float | None = None) -> Any:
        v = self.raw(key, default)
        if v is default and default is not _MISSING:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.error(key, f"must be a finite number, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be >= {minimum}, got {v}")
        return float(v)

    def list(self, key: str, default: Any = _MISSING) -> Any:
        v = self.raw(key, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, list):
            raise self.error(key, f"must be a list, got {type(v).__name__}")
        return v

    def dict(self, key: str, default: Any = _MISSING) -> Any:
        v = self.raw(key, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, dict):
            raise self.error(key, f"must be a mapping, got {type(v).__name__}")
        return v


def seed_of(p: Params) -> int:
    return p.int("seed", 0, minimum=0)


def require_input(inputs: dict[str, Path], name: str, kind: str) -> Path:
    if name not in inputs:
        have = ", ".join(sorted(inputs)) or "none"
        raise ParamError(f"{kind}: needs input {name!r} (given: {have})")
    return inputs[name]


# ---- paths and URIs ----------------------------------------------------------------------

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "http://", "https://")


def resolve_path(path: str, repo_root: Path, *, what: str, allow_absolute: bool = False) -> Path:
    """A local path from a repo-relative path or `file://` URI; refuses escaping repo_root.

    `file://data/x.csv` and `data/x.csv` are repo-relative; `file:///abs/x.csv` and `/abs/x.csv`
    are absolute, accepted when `allow_absolute` or when they lie inside repo_root.
    """
    if not isinstance(path, str) or not path:
        raise ParamError(f"{what}: expected a path, got {path!r}")
    rel = path[len("file://"):] if path.startswith("file://") else path
    if "://" in rel:
        raise ParamError(f"{what}: {path!r} is not a local path")
    root = Path(os.path.realpath(repo_root))
    candidate = Path(rel)
    full = Path(os.path.realpath(candidate if candidate.is_absolute() else root / candidate))
    inside = full == root or root in full.parents
    if candidate.is_absolute():
        if not (allow_absolute or inside):
            raise ParamError(f"{what}: {path!r} is outside the repository")
    elif not inside:
        raise ParamError(f"{what}: {path!r} escapes the repository root")
    return full


def open_uri(uri: str, repo_root: Path, *, what: str) -> IO[bytes]:
    """Open a dataset URI for binary reading: local (repo-relative) or remote via fsspec."""
    if uri.startswith(REMOTE_SCHEMES):
        try:
            import fsspec
        except ImportError as e:  # pragma: no cover - fsspec ships with the venv
            raise ParamError(f"{what}: reading {uri!r} needs fsspec (pip install fsspec s3fs gcsfs)") from e
        try:
            return fsspec.open(uri, "rb").open()
        except (ImportError, ValueError) as e:
            # fsspec knows the scheme but its filesystem package (s3fs, gcsfs…) is missing.
            raise ParamError(f"{what}: cannot open {uri!r}: {e}") from e
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise ParamError(f"{what}: the step runtime cannot read {scheme}:// URIs ({uri!r});"
                         f" use file://, s3:// or gs://")
    path = resolve_path(uri, repo_root, what=what)
    if not path.is_file():
        raise ParamError(f"{what}: no such file: {uri!r}")
    return open(path, "rb")


def sha256_tree(root: Path, exclude: Iterable[str] = ()) -> str:
    """Content hash of a directory: sorted relative paths and their file hashes."""
    skip = set(exclude)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if rel in skip:
            continue
        h.update(rel.encode() + b"\0" + sha256_file(f).encode() + b"\n")
    return h.hexdigest()


def fmt_num(v: float) -> str:
    """A number for a one-line message: 0.95, 0.7812, 812.5 (at most 4 decimals)."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return s if s not in ("0", "-0") else f"{v:.3g}"
