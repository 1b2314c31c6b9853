"""Per-environment state: what `apply` last did, and the lock that keeps two applies apart.

`base` holds the state document and its checks; `local` and `s3` are the two stores; this
module's `open_store` picks one from the Project's `state:` block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from specops.state.base import (
    DEFAULT_STALE_AFTER,
    KEEP_BACKUPS,
    SCHEMA_VERSION,
    LockHeld,
    LockInfo,
    ResourceState,
    State,
    StateError,
    StateStore,
)
from specops.state.local import LocalStore
from specops.state.s3 import S3Store

__all__ = ["DEFAULT_STALE_AFTER", "KEEP_BACKUPS", "SCHEMA_VERSION", "LocalStore", "LockHeld", "LockInfo",
           "ResourceState", "S3Store", "State", "StateError", "StateStore", "open_store"]


def open_store(project_spec_state: Any, env: str, root: Path) -> StateStore:
    """The store for `env` as the Project's `state:` block (specs.project.StateBackend) says."""
    backend = getattr(project_spec_state, "backend", "local") if project_spec_state is not None else "local"
    if backend == "local":
        path = getattr(project_spec_state, "path", None) or ".specops/state"
        return LocalStore(Path(root) / path, env)
    if backend == "s3":
        bucket = getattr(project_spec_state, "bucket", None)
        if not bucket:
            raise StateError("state.backend is 's3' but state.bucket is not set in specops.yaml")
        return S3Store(bucket, env, prefix=getattr(project_spec_state, "prefix", None),
                       region=getattr(project_spec_state, "region", None))
    raise StateError(f"state.backend {backend!r} is not supported (local, s3)")
