"""One JSON line per action on stdout (what log collectors parse): time, level, event, msg,
and the event's fields. Messages pass through `redact`, so no secret-shaped value is logged."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from specops.redact import redact


class JsonLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()  # re-entrant: a signal handler may log mid-line

    def __call__(self, event: str, msg: str, *, level: str = "info", **fields: Any) -> None:
        doc = {"time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "level": level, "event": event, "msg": redact(msg)}
        doc.update({k: v for k, v in fields.items() if v is not None})
        line = json.dumps(doc, ensure_ascii=False, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
