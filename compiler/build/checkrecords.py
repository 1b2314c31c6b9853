"""The semantic checks' records: what each per-node check call found, by the signature of the
node's unit (build/units.py), and what the secret scan found in each file, by the file's
sha256, from the last run on this repo. An edit changes the signatures of the units it
reaches; the checks of every other unit are replayed from here (checks/records.py), so a
one-spec edit re-checks one unit per environment instead of the whole repo.

A unit's signature hashes what its checks read (the members' files, the Project, the lock
file, every repo path the specs name, the specops code); this file's key adds what reaches
diagnostics besides: the Python version and the parser and validator libraries (the same as
the validate cache's, build/checkcache.py). One JSON file,
`<root>/.specops/cache/checks.json`, rewritten only when something changed, holding this
run's scopes and, for environments this run did not check (`--env`), the last ones: bounded
by the repo's size. JSON, never pickle: the cache folder may come with a checkout.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from specops.build import units
from specops.build.cache import code_fingerprint
from specops.build.checkcache import libs
from specops.fsio import ReadRefused, read_regular, write_atomic
from specops.paths import repo_cache_dir

FORMAT = 1
FILE = "checks.json"
MAX_BYTES = 64 << 20


def _key() -> str:
    return hashlib.sha256(f"checks {FORMAT}\n{code_fingerprint()}\n{sys.version}\n{libs()}".encode()).hexdigest()


class Records:
    """checks.records.CheckRecords over `<root>/.specops/cache/checks.json`."""

    def __init__(self, resolved: Any):
        self.resolved = resolved
        self.path = repo_cache_dir(resolved.repo.root) / FILE
        self.key = _key()
        # scope -> [environment or None (a file's), {call: rows}]
        self.old: dict[str, list] = {}
        self.new: dict[str, list] = {}
        self._scopes: dict[str, dict[str, str]] = {}  # environment -> node key -> its unit's scope
        self._fresh = False  # a call ran (not replayed): its rows are new
        try:
            rec = json.loads(read_regular(self.path, MAX_BYTES))
            if isinstance(rec, dict) and rec.get("key") == self.key and isinstance(rec.get("scopes"), dict):
                self.old = rec["scopes"]
        except (OSError, ReadRefused, ValueError):
            pass

    def unit(self, view: Any, key: str) -> str | None:
        scopes = self._scopes.get(view.name)
        if scopes is None:
            unit_of, sigs = units.env_units(self.resolved, view)
            named = {unit: "u:" + sig for unit, sig in sigs.items()}
            scopes = self._scopes[view.name] = {k: named[unit] for k, unit in unit_of.items()}
        scope = scopes.get(key)
        if scope is not None and scope not in self.new:
            self.new[scope] = [view.name, {}]
        return scope

    def file(self, rel: str) -> str | None:
        scope = "f:" + units.file_sha(self.resolved, rel)
        if scope not in self.new:
            self.new[scope] = [None, {}]
        return scope

    def shared(self) -> str | None:
        if "m:" not in self.new:
            self.new["m:"] = [None, {}]
        return "m:"

    def get(self, scope: str, call: str) -> list | None:
        got = self.old.get(scope)
        try:
            rows = got[1].get(call)  # type: ignore[index]
        except (TypeError, AttributeError, IndexError, KeyError):
            return None
        return rows if isinstance(rows, list) else None

    def put(self, scope: str, call: str, rows: list) -> None:
        self.new[scope][1][call] = rows
        if not self._fresh:
            self._fresh = rows is not self.get(scope, call)

    def save(self) -> None:
        checked = set(self.resolved.envs)
        scopes = dict(self.new)
        for scope, rec in self.old.items():
            # Environments this run did not check keep their records (`compile --env dev`).
            if scope not in scopes and isinstance(rec, list) and rec and rec[0] is not None \
                    and rec[0] not in checked:
                scopes[scope] = rec
        if not self._fresh and scopes.keys() == self.old.keys():
            return  # every call replayed, no scope gone: the file holds this run already
        try:
            write_atomic(self.path, json.dumps({"format": FORMAT, "key": self.key, "scopes": scopes},
                                               separators=(",", ":")).encode())
        except (OSError, ValueError):
            pass  # only slower next time (a read-only checkout)


def records_of(resolved: Any) -> Records:
    """For checks.analyze(records=...)."""
    return Records(resolved)
