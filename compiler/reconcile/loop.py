"""The standing loop: fetch, check, sync every environment; sleep the interval, or less when
a webhook fires, or longer (exponential back-off up to a maximum) after an error.

Bad input never applies anything and never stops the loop: an unreachable remote, a
force-pushed branch, invalid specs at the head, a lock held by CI each give one JSON log
line, `last_sync_result="error"` for the environments concerned, and a back-off. SIGTERM or
SIGINT lets the current sync finish (an apply is never cut short on purpose), then exits.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specops.checks import analyze
from specops.diagnostics import suggestion
from specops.reconcile.engine import Engine, EnvOutcome
from specops.reconcile.metrics import Metrics
from specops.reconcile.server import WEBHOOK_SECRET_ENV, Server
from specops.reconcile.source import GitSource, SourceError, safe_url


@dataclass
class LoopConfig:
    url: str
    branch: str = "main"
    path: str = "."
    workdir: Path = Path(".specops-reconcile")
    envs: tuple[str, ...] = ()  # empty: every declared environment, in declaration order
    interval: float = 60.0
    backoff_max: float = 300.0
    lock_timeout: float = 0.0
    identity: str = ""  # names this reconciler's locks; default: the host name
    listen: str = "127.0.0.1:8080"
    accept_force_push: bool = False
    notify: bool = True


class LoopError(Exception):
    """The loop cannot start (its address is taken): one line, exit 1."""


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host.strip("[]") or "0.0.0.0"), int(port)


class Loop:
    def __init__(self, cfg: LoopConfig, log: Callable[..., None]) -> None:
        self.cfg, self.log = cfg, log
        self.metrics = Metrics()
        self.identity = cfg.identity or socket.gethostname()
        self.source = GitSource(cfg.url, cfg.branch, cfg.workdir, cfg.path, cfg.accept_force_push)
        self.engine = Engine(log=log, metrics=self.metrics, identity=self.identity, lock_timeout=cfg.lock_timeout,
                             notify=cfg.notify)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.ready = False
        self.failures = 0
        self.known_envs: list[str] = list(cfg.envs)
        self.server: Server | None = None
        self.signal_name: str | None = None

    # -- one pass ---------------------------------------------------------------------

    def _fail(self, event: str, msg: str, **fields: Any) -> bool:
        self.log(event, msg + "; nothing applied", level="error", **fields)
        self.metrics.errors(self.known_envs, time.time())
        return False

    def run_once(self) -> bool:
        """Fetch, check and sync every environment once. True when nothing failed."""
        t0 = time.monotonic()
        try:
            co = self.source.fetch()
        except SourceError as e:
            self.metrics.fetch_errors.inc()
            return self._fail("fetch_error", str(e), url=safe_url(self.cfg.url), branch=self.cfg.branch)
        if not self.ready:
            self.ready = True
            self.metrics.ready.set(1)
        self.metrics.set_revision(self.cfg.branch, co.revision)
        if co.changed:
            self.log("fetch", f"checked out {co.revision[:12]} of {self.cfg.branch}", revision=co.revision,
                     branch=self.cfg.branch)
        resolved = analyze(co.root)
        if resolved.diagnostics.has_errors:
            errs = [d for d in resolved.diagnostics.sorted() if d.severity == "error"]
            return self._fail("invalid_specs", f"the specs at {co.revision[:12]} are invalid ({len(errs)} error(s)); "
                              f"first: {errs[0].headline()}", revision=co.revision,
                              errors=[d.headline() for d in errs[:10]])
        declared = list(resolved.project.environments)
        envs = list(self.cfg.envs) or declared
        unknown = [e for e in envs if e not in declared]
        if unknown:
            return self._fail("invalid_specs", f"environment '{unknown[0]}' is not declared at {co.revision[:12]}"
                              + suggestion(unknown[0], declared), revision=co.revision)
        self.known_envs = envs
        outcomes: list[EnvOutcome] = self.engine.sync(resolved, envs, co.revision)
        ok = all(o.result != "error" for o in outcomes)
        self.log("sync", f"synced {co.revision[:12]}: " + ", ".join(f"{o.env} {o.result}" for o in outcomes),
                 level="info" if ok else "warning", revision=co.revision, duration_s=round(time.monotonic() - t0, 3),
                 envs={o.env: o.result for o in outcomes})
        return ok

    # -- the loop ---------------------------------------------------------------------

    def backoff(self) -> float:
        """After n failures in a row: interval x 2^n, at most backoff_max (and never less than
        the interval)."""
        return max(self.cfg.interval, min(self.cfg.backoff_max, self.cfg.interval * (2 ** self.failures)))

    def trigger(self) -> None:
        self.log("webhook", "sync requested by webhook")
        self.wake.set()

    def _signal(self, signum: int, _frame: Any) -> None:
        # Only flags here: the handler runs between two bytecodes of the main thread, which may
        # hold the log's lock at that moment; the loop logs the stop itself.
        self.signal_name = signal.Signals(signum).name
        self.stopping.set()
        self.wake.set()

    def serve(self) -> int:
        host, port = parse_listen(self.cfg.listen)
        try:
            self.server = Server(host, port, ready=lambda: self.ready, metrics=self.metrics.exposition,
                                 on_webhook=self.trigger, secret=os.environ.get(WEBHOOK_SECRET_ENV) or None)
        except OSError as e:
            raise LoopError(f"cannot listen on {self.cfg.listen} ({e.strerror or e})") from None
        self.server.start()
        return self.server.port

    def run(self, *, once: bool = False) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._signal)
            signal.signal(signal.SIGINT, self._signal)
        port = None if once else self.serve()
        self.metrics.up.set(1)
        self.log("start", f"reconciling {safe_url(self.cfg.url)} branch {self.cfg.branch} every "
                 f"{self.cfg.interval:g} s" + (f"; listening on port {port}" if port else ""),
                 url=safe_url(self.cfg.url), branch=self.cfg.branch, port=port, identity=self.identity,
                 envs=list(self.cfg.envs) or None)
        ok = True
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                ok = self.run_once()
                if once:
                    break
                if ok:
                    self.failures = 0
                    wait = self.cfg.interval
                else:
                    self.failures += 1
                    wait = self.backoff()
                    self.log("backoff", f"sync failed ({self.failures} in a row); next try in {wait:g} s unless a "
                             "webhook fires", level="warning", backoff_s=wait, failures=self.failures)
                self.metrics.backoff.set(0 if ok else wait)
                self.wake.wait(wait)
        finally:
            self.metrics.up.set(0)
            if self.server is not None:
                self.server.stop()
            self.log("stop", "reconcile loop stopped" + (f" ({self.signal_name})" if self.signal_name else ""))
        return 0 if ok else 1
