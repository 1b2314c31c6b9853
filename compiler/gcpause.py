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
def paused_gc(until_exit: bool = False) -> Iterator[None]:
    """No automatic cyclic collection inside; nested uses are free (the outermost resumes).

    Every object made during the pause is still in the youngest generation when it ends, so
    the first collection after it walks them all once. `until_exit` (a command that ends
    when its work does) freezes them instead: the collector never walks them again, neither
    after the pause nor at interpreter exit, and the few cycles among them stay until the
    process ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if until_exit:
            gc.freeze()
        gc.enable()
