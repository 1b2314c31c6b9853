"""The dependency index of an incremental compile: an edit re-lowers and re-emits only the
part of an environment it can reach.

A unit is a connected component of an environment's reference graph (the resolver's edges,
both ways), with the links lowering follows by name beyond them: a prompt gate's judge
model, and the serving targets of one Helm release (their values share a file). Lowering
and emission read a node's own spec, nodes it reaches through those links, the Project, the
lock file and the repo files the specs name, nothing else (the IR modules look nodes up only
by the names a spec writes, and each resolved name is an edge). So a unit's artifacts and
compile diagnostics are a function of:

- every member's key, file and the sha256 of that file's bytes (the bytes carry the spec,
  its overrides and the lines its diagnostics point at), and
- the environment's shared inputs: the specops code, the environment, the Project file's
  bytes, specops.lock, and the state of every repo path a spec names (cache.probes_of: a
  data file's hash, a model folder's config.json and its weights' headers, and the folder's
  listing).

A unit whose signature (sha256 of all that) is in the last build's index is taken from that
build's pack, artifacts and diagnostics as they were, without lowering it. A unit that
joined, lost or changed a member has a new signature and is compiled. The shared inputs are
hashed into every signature, so a change to one of them recompiles everything (through the
per-node emission cache, compile.EmitCache). tests/compiler/build/test_incremental.py checks
the result against a compile without any cache after random edit sequences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from specops.build import cache
from specops.build.checkcache import probe_state
from specops.paths import PROJECT_FILE
from specops.resolve.lockfile import lock_bytes


def components(view: Any) -> dict[str, str]:
    """Node key -> its unit's name (the smallest key in it)."""
    parent: dict[str, str] = {k: k for k in view.nodes}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def union(a: str, b: str) -> None:
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    for e in view.edges:
        union(e.src, e.dst)
    releases: dict[str, str] = {}
    for key, node in view.nodes.items():
        spec = node.spec
        if node.kind == "EvalGate":
            judge = getattr(spec, "judge", None)
            if judge is not None and getattr(judge, "model", None):
                union(key, f"Model/{judge.model}")
        elif node.kind == "ServingTarget":
            # A release's values file is written under the release's name: its members and a
            # target of that name are one unit.
            for name in (getattr(spec, "release", None), node.name):
                if name:
                    first = releases.setdefault(name, key)
                    union(first, key)
    return {k: find(k) for k in parent}


def shared_key(resolved: Any, code: str, probes: dict[str, str]) -> str:
    """sha256 of what every unit of the repo depends on (see the module docstring).
    `probes`: cache.probes_of(resolved), every repo path the specs may name, existing or
    recorded as missing, so a file created where a spec pointed is seen too."""
    root = resolved.repo.root
    h = hashlib.sha256(f"units 1\n{code}\n".encode())
    h.update(hashlib.sha256(resolved.repo.files.get(PROJECT_FILE, b"")).digest())
    h.update(hashlib.sha256(lock_bytes(root)).digest())
    for rel, state in sorted(probes.items()):
        # A folder by its listing (names, sizes, mtimes) too; its config.json and weights'
        # headers are probes of their own, by content (cache.WEIGHTS_PROBE).
        h.update(f"{rel}\0{probe_state(root, rel) if state == 'dir' else state}\n".encode())
    return h.hexdigest()


def signatures(view: Any, unit_of: dict[str, str], shared: str, sha_of: Callable[[str], str]) -> dict[str, str]:
    """Unit name -> signature, for every unit of the environment (`unit_of`: components)."""
    members: dict[str, list[str]] = {}
    for key, unit in unit_of.items():
        members.setdefault(unit, []).append(key)
    out = {}
    for unit, keys in members.items():
        h = hashlib.sha256(f"{shared}\n{view.name}\n".encode())
        for key in sorted(keys):
            f = view.nodes[key].file
            sha = sha_of(f)
            h.update(f"{key}\0{f}\0{sha}\n".encode())
        out[unit] = h.hexdigest()
    return out


def probes(resolved: Any) -> dict[str, str]:
    """cache.probes_of(resolved), once per run (resolved.memo): the units' shared key, the
    check records and the build store all use it."""
    got = resolved.memo.get("probes")
    if got is None:
        got = resolved.memo["probes"] = cache.probes_of(resolved)
    return got


def env_units(resolved: Any, view: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(node key -> unit name, unit name -> signature) of one environment, computed once per
    run (resolved.memo): the semantic checks' records (build/checkrecords.py) and the
    compile's replay key on the same units."""
    key = ("units", view.name)
    got = resolved.memo.get(key)
    if got is None:
        shared = resolved.memo.get("units-shared")
        if shared is None:
            shared = resolved.memo["units-shared"] = shared_key(resolved, cache.code_fingerprint(), probes(resolved))
        unit_of = components(view)
        got = resolved.memo[key] = (unit_of, signatures(view, unit_of, shared, lambda rel: file_sha(resolved, rel)))
    return got


def file_sha(resolved: Any, rel: str) -> str:
    """sha256 of a loaded file's bytes ("-" for one not loaded), once per run."""
    shas = resolved.memo.setdefault("file-sha", {})
    sha = shas.get(rel)
    if sha is None:
        raw = resolved.repo.files.get(rel)
        sha = shas[rel] = hashlib.sha256(raw).hexdigest() if raw is not None else "-"
    return sha


class UnitIndex:
    """One environment's units against the last build's: which to compile, and what the
    others produced (`replay`). `records` is this compile's `{signature: {paths, diags}}`,
    stored with its build for the next one."""

    def __init__(self, sigs: dict[str, str], unit_of: dict[str, str], previous: dict[str, Any],
                 artifacts: dict[str, Any]):
        self.unit_of = unit_of
        self.sig = sigs
        self.reused = {s for s in sigs.values() if _replayable(previous.get(s), artifacts)}
        self.previous = previous
        self.records: dict[str, Any] = {s: {"paths": [], "diags": []} for s in sigs.values() if s not in self.reused}

    def compiles(self, key: str) -> bool:
        """Whether node `key` must be lowered and emitted (its unit is not in the last build)."""
        unit = self.unit_of.get(key)
        return unit is None or self.sig[unit] not in self.reused

    def sink(self, build: Any, key: str) -> Any:
        """`build` as seen by the compile of node `key`: what it adds is also recorded."""
        return _Sink(build, self.records[self.sig[self.unit_of[key]]])


def _replayable(rec: Any, artifacts: dict[str, Any]) -> bool:
    """A stored unit record of the expected shape whose artifacts are all in the pack."""
    try:
        return all(p in artifacts for p in rec["paths"]) and all(len(r) == 9 for r in rec["diags"])
    except (KeyError, TypeError):
        return False


class _Diags:
    def __init__(self, diags: Any, rows: list):
        self._diags, self._rows = diags, rows

    def add(self, d: Any) -> None:
        self._diags.add(d)
        self._rows.append(d.to_row())

    def extend(self, ds: Any) -> None:
        for d in ds:
            self.add(d)


class _Sink:
    def __init__(self, build: Any, rec: dict[str, Any]):
        self._build, self._rec = build, rec
        self.diagnostics = _Diags(build.diagnostics, rec["diags"])

    def add(self, a: Any) -> None:
        self._build.add(a)
        self._rec["paths"].append(a.path)
