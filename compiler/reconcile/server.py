"""The loop's HTTP side (standard library `http.server`, one thread per request):

    GET  /healthz   200 while the process serves (liveness)
    GET  /readyz    200 after the first successful fetch, 503 before (readiness)
    GET  /metrics   Prometheus text exposition (prometheus_client)
    POST /webhook   wake the loop now (a git host's push hook)

The webhook only wakes the loop, which then fetches from git: nothing in the request is used
as input. With a secret in $SPECOPS_WEBHOOK_SECRET, a request must prove it knows it: GitHub's
`X-Hub-Signature-256` (HMAC-SHA256 of the body) or GitLab's `X-Gitlab-Token`; otherwise 401.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20
WEBHOOK_SECRET_ENV = "SPECOPS_WEBHOOK_SECRET"


def webhook_authorized(secret: str | None, headers: Any, body: bytes) -> bool:
    if not secret:
        return True
    token = headers.get("X-Gitlab-Token")
    if token is not None:
        return hmac.compare_digest(token.encode(), secret.encode())
    sig = headers.get("X-Hub-Signature-256") or ""
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig.encode(), want.encode())


class Server:
    def __init__(self, host: str, port: int, *, ready: Callable[[], bool], metrics: Callable[[], tuple[bytes, str]],
                 on_webhook: Callable[[], None], secret: str | None) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "specops-reconcile"

            def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    ok = ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready: no successful fetch yet\n")
                elif path == "/metrics":
                    body, ctype = metrics()
                    self._send(200, body, ctype)
                else:
                    self._send(404, b"not found\n")

            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != "/webhook":
                    self._send(404, b"not found\n")
                    return
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    n = -1
                if not 0 <= n <= MAX_BODY:
                    self._send(413, b"body too large\n")
                    return
                body = self.rfile.read(n)
                if not webhook_authorized(outer.secret, self.headers, body):
                    self._send(401, b"bad signature or token\n")
                    return
                on_webhook()
                self._send(202, b"sync requested\n")

            def log_message(self, *args: Any) -> None:
                pass  # the loop logs what matters, as JSON

        self.secret = secret
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="specops-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
