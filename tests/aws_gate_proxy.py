"""A forwarding HTTP proxy in front of the moto server that can hold one chosen request: the
way to stop a real apply in the middle, deterministically, to kill it there (fault injection
on the network, like toxiproxy; specops and moto are the real ones). Pytest-free.

    with gate_proxy(moto_endpoint) as proxy:
        proxy.hold(lambda target, body: target == "SageMaker.CreatePipeline" and b"x-dev" in body)
        ...                       # point AWS_ENDPOINT_URL at proxy.url; start the apply
        proxy.held.wait(60)       # the apply is now blocked inside that call
        ...                       # kill the client
        proxy.release()           # the request then reaches moto (the live side changed,
                                  # the dead client never recorded it)
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class Proxy:
    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname, u.port
        self.url = ""
        self.held = threading.Event()  # set when the chosen request arrived and is being held
        self.forwarded = threading.Event()  # set when the held request was passed on
        self._release = threading.Event()
        self._match: Callable[[str, bytes], bool] | None = None
        self._lock = threading.Lock()

    def hold(self, match: Callable[[str, bytes], bool]) -> None:
        """Hold the first request for which match(X-Amz-Target, body) is true."""
        self._match = match

    def release(self) -> None:
        self._release.set()

    def _should_hold(self, target: str, body: bytes) -> bool:
        with self._lock:
            if self._match is not None and self._match(target, body):
                self._match = None  # only the first one
                return True
            return False

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


@contextmanager
def gate_proxy(upstream: str) -> Iterator[Proxy]:
    proxy = Proxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if proxy._should_hold(self.headers.get("X-Amz-Target", ""), body):
                proxy.held.set()
                proxy._release.wait()
                status, rh, data = proxy.forward(self.command, self.path, headers, body)
                proxy.forwarded.set()
            else:
                status, rh, data = proxy.forward(self.command, self.path, headers, body)
            try:
                self.send_response(status)
                head = self.command == "HEAD"  # no body: the upstream's Content-Length stands
                for k, v in rh:
                    if k.lower() not in HOP and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
            except OSError:
                pass  # the client is gone (killed while we held its request)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield proxy
    finally:
        proxy.release()
        server.shutdown()
        server.server_close()
