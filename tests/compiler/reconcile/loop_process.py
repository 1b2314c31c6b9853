"""`specops reconcile` as a real process, its JSON log lines collected as they come."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


class LoopProcess:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "specops", "reconcile", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.raw.append(line)
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    pass
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 180.0, after: int = 0) -> dict:
        """The first log line from index `after` on that satisfies `pred` (a hang guard, not a
        timing assertion: the deadline is far above anything expected)."""
        with self._cond:
            def found() -> dict | None:
                return next((x for x in self.lines[after:] if pred(x)), None)
            ok = self._cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout)
            hit = found()
            if not ok or hit is None:
                raise AssertionError("no such log line; output so far:\n" + "".join(self.raw[-60:]))
            return hit

    def events(self, event: str) -> list[dict[str, Any]]:
        with self._cond:
            return [x for x in self.lines if x.get("event") == event]

    @property
    def port(self) -> int:
        return int(self.wait_for(lambda x: x.get("event") == "start")["port"])

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method="POST",
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def wait(self, timeout: float = 300.0) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc

    def stop(self, sig: int | None = None, timeout: float = 120.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._reader.join(10)
        return rc


def loop_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env.pop("SPECOPS_DEBUG", None)
    return env
