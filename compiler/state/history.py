"""The apply history of one environment, kept next to its state: who applied, from which
commit, what changed, and how it ended (specops.ops.audit writes the entries).

One JSON document per environment (`<env>.history.json` beside `<env>.state.json`, in the
same directory or bucket prefix), keys sorted, indent 2:

    {"env": ..., "version": 1, "entries": [{"at", "who", "commit", "result", "changes", ...}]}

oldest entry first. Appends happen under the state lock that `apply` holds, so two writers
never race; past KEEP_HISTORY entries the oldest are dropped (the bound keeps the document,
which every append rewrites, small). A history that is not this format is refused with one
line and never overwritten: an audit trail is not silently reset.
"""

from __future__ import annotations

import json
from typing import Any

from specops.state.base import StateError

HISTORY_VERSION = 1
KEEP_HISTORY = 500


def history_name(env: str) -> str:
    return f"{env}.history.json"


def parse_history(data: bytes | None, env: str, where: str) -> list[dict[str, Any]]:
    """The entries of a stored history (none when there is no document yet)."""
    if data is None:
        return []
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StateError(f"{where}: the apply history is not valid JSON ({e}); it was not changed") from None
    if (not isinstance(doc, dict) or doc.get("version") != HISTORY_VERSION or doc.get("env") != env
            or not isinstance(doc.get("entries"), list) or not all(isinstance(x, dict) for x in doc["entries"])):
        raise StateError(f"{where}: not an apply history of env {env!r} (version {HISTORY_VERSION}); "
                         "it was not changed")
    return doc["entries"]


def append_entry(entries: list[dict[str, Any]], entry: dict[str, Any], env: str, keep: int | None = None) -> bytes:
    """The document with `entry` appended and only the newest `keep` (KEEP_HISTORY) entries kept."""
    kept = [*entries, entry][-(keep or KEEP_HISTORY):]
    return (json.dumps({"env": env, "version": HISTORY_VERSION, "entries": kept}, indent=2, sort_keys=True,
                       ensure_ascii=False) + "\n").encode("utf-8")
