"""Python's cyclic garbage collector paused while a command builds its big, acyclic data.

Loading, resolving and checking a repo allocate millions of objects that live until the
command ends (dicts of spec data, models, nodes) and almost no reference cycles: at 10,000
specs a whole validate leaves about a thousand cyclic objects. Each full collection walks
every live object, and the collector runs one whenever the heap has grown by a quarter, so
its share of the run grew with the repo (to a fifth of validate at 10,000 specs). Reference
counting still frees everything else at once; cycles wait until the pause ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic cyclic collection inside; nested uses are free (the outermost resumes)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
