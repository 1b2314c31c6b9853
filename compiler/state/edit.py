"""`specops state list | show | rm | mv`: look at and repair recorded state.

Every write goes the way `apply` writes: under the store's lock, through `store.write`, which
checks lineage and serial and keeps the previous version as a backup. An unknown address or
a move onto an existing one is one line naming it, and nothing is written.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from specops.diagnostics import suggestion
from specops.state.base import ResourceState, State, StateError, StateStore


def _read(store: StateStore) -> State:
    state = store.read()
    if state is None:
        raise StateError(f"env '{store.env}' has no state yet (nothing applied)")
    return state


def _known(state: State, address: str) -> ResourceState:
    r = state.resources.get(address)
    if r is None:
        raise StateError(f"no resource '{address}' in the state of env '{state.env}'"
                         + suggestion(address, state.resources))
    return r


def list_resources(store: StateStore) -> dict[str, Any]:
    state = store.read()
    resources = [] if state is None else [
        {"address": r.address, "type": r.type, "name": r.name, "content_hash": r.content_hash}
        for _, r in sorted(state.resources.items())]
    return {"version": 1, "env": store.env, "serial": state.serial if state else None,
            "lineage": state.lineage if state else None, "resources": resources}


def show(store: StateStore, address: str) -> dict[str, Any]:
    return {"version": 1, "env": store.env, "resource": asdict(_known(_read(store), address))}


def remove(store: StateStore, address: str, *, lock_timeout: float = 0.0) -> ResourceState:
    """Forget `address` (the live object is left alone, as `terraform state rm` does)."""
    with store.lock("state rm", timeout=lock_timeout):
        state = _read(store)
        gone = _known(state, address)
        del state.resources[address]
        for r in state.resources.values():  # nothing may depend on an address that is gone
            r.depends_on = [d for d in r.depends_on if d != address]
        store.write(state)
    return gone


def move(store: StateStore, src: str, dst: str, *, lock_timeout: float = 0.0) -> ResourceState:
    """Record `src` under the address `dst` (a renamed spec keeps its live object)."""
    if "." not in dst or dst.split(".", 1)[0] != src.split(".", 1)[0]:
        raise StateError(f"'{dst}' is not an address of the same type as '{src}' "
                         f"(<type>.<name>, e.g. {src.split('.', 1)[0]}.new-name)")
    with store.lock("state mv", timeout=lock_timeout):
        state = _read(store)
        r = _known(state, src)
        if dst in state.resources:
            raise StateError(f"'{dst}' already exists in the state of env '{state.env}'; "
                             f"remove it first (`specops state rm {dst}`) if it is stale")
        del state.resources[src]
        r.address, r.name = dst, dst.split(".", 1)[1]
        state.resources[dst] = r
        for other in state.resources.values():
            other.depends_on = [dst if d == src else d for d in other.depends_on]
        store.write(state)
    return r
