"""A real HTTP server on 127.0.0.1 that records the webhook requests it receives (the
notifier's other end), for tests and benchmarks. Pytest-free:

    with webhook_receiver() as hook:
        ...                      # something POSTs to hook.url
        hook.wait(1)             # block until one request has arrived (or fail after 30 s)
        hook.requests[0].json()

`fail_first=n` answers the first n requests with HTTP 503 (a flaky receiver).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[1] / "compiler" / "schemas" / "events" / "notification.schema.json"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    fail_first: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, n: int, timeout: float = 30.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(f"expected {n} webhook request(s), got {len(self.requests)}")
            return list(self.requests)

    def events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests]


def validate(payload: dict[str, Any]) -> None:
    """Check a payload against the committed notification schema."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(payload)


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}
    answered = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec = holder["r"]
            answered[0] += 1
            if answered[0] <= rec.fail_first:
                self.send_response(503)
                self.end_headers()
                return
            with rec._cond:
                rec.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                rec._cond.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/specops", fail_first=fail_first)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()
