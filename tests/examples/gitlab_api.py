"""A test double of the few GitLab REST endpoints the CI kit calls (GitLab cannot run here):
merge-request notes and issues of one project, kept in memory. Pytest-free."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeGitLab:
    def __init__(self) -> None:
        self.notes: dict[int, list[dict[str, Any]]] = {}  # MR iid -> notes
        self.issues: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.url = ""
        self.token = "glpat-test-token-0000000000"


@contextmanager
def fake_gitlab() -> Iterator[FakeGitLab]:
    gl = FakeGitLab()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            u = urlsplit(self.path)
            gl.calls.append((self.command, u.path))
            if self.headers.get("PRIVATE-TOKEN") != gl.token:
                return self._reply(401, {"message": "401 Unauthorized"})
            n = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(n)) if n else {}
            parts = u.path.strip("/").split("/")  # api v4 projects 42 ...
            rest = parts[4:]
            if rest[:1] == ["merge_requests"] and rest[2:3] == ["notes"]:
                notes = gl.notes.setdefault(int(rest[1]), [])
                if self.command == "GET":
                    return self._reply(200, notes)
                if self.command == "POST":
                    notes.append({"id": len(notes) + 1, "body": data["body"]})
                    return self._reply(201, notes[-1])
                note = next(x for x in notes if x["id"] == int(rest[3]))
                note["body"] = data["body"]
                return self._reply(200, note)
            if rest[:1] == ["issues"]:
                if self.command == "GET":
                    q = parse_qs(u.query)
                    return self._reply(200, [i for i in gl.issues if i["state"] == q.get("state", ["opened"])[0]
                                             and q.get("labels", [""])[0] in i["labels"]])
                if self.command == "POST":
                    gl.issues.append({"iid": len(gl.issues) + 1, "title": data["title"], "state": "opened",
                                      "description": data["description"], "labels": data["labels"].split(",")})
                    return self._reply(201, gl.issues[-1])
                issue = next(i for i in gl.issues if i["iid"] == int(rest[1]))
                issue["description"] = data["description"]
                return self._reply(200, issue)
            return self._reply(404, {"message": "404 Not Found"})

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gl.url = f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield gl
    finally:
        server.shutdown()
        server.server_close()
