"""Where a spec repo is: the nearest directory holding specops.yaml.

Kept apart from the loader (which imports pydantic) so the no-op compile path can find the
repo without importing anything heavy.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_FILE = "specops.yaml"


def find_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding specops.yaml."""
    p = start.resolve()
    if p.is_file():
        p = p.parent
    for d in (p, *p.parents):
        if (d / PROJECT_FILE).is_file():
            return d
    return None
