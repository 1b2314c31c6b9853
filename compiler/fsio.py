"""Writing files so that a reader never sees half of one (stdlib only).

Every file specops writes for someone else to read — build output, caches, the GitOps
directory, the prompt registry, step outputs, state — goes through `write_atomic`: a temp
file in the same directory, then a rename over the target. `durable=True` adds the fsyncs a
crash-safe store needs (state files).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not supported (e.g. Windows): rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = False,
                 replace: Callable[[str, Path], None] = os.replace) -> None:
    """Write `data` to `path`: readers see the old bytes or the new ones, never a mix. On any
    error the temp file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
