"""The one notifier: a JSON event POSTed to a webhook whose URL is a secret reference.

Three events share one payload, documented by `compiler/schemas/events/notification.schema.json`
(field `event`): `apply` (what an apply did, from `specops apply` or the reconcile loop),
`drift` (live changes found behind specops's back: `specops drift`, the loop) and `breach` (a
monitor's checks failed). A Project declares named notifiers (`spec.notifications`), each with
the events and environments it wants; a Monitor names the notifiers its breaches go to.

Delivery never fails the work it reports on: a notifier whose secret cannot be read, or whose
endpoint keeps failing, gives a `Delivery` with `ok=False` and one line for the log. Requests
are retried (connection errors, 429, 5xx) with exponential back-off (tenacity). Neither the
URL nor the signing key ever appears in a message: a webhook URL embeds its token.

With a signing key, `X-Specops-Signature-256: sha256=<hex HMAC-SHA256 of the body>` lets the
receiver check the sender (GitHub's scheme). Every request also carries `X-Specops-Event` and a
`X-Specops-Delivery` id, which a receiver can use to drop a retried duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tenacity import RetryError, retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from specops.redact import redact
from specops.runtime.secrets import SecretError, read_secret

EVENTS = ("apply", "drift", "breach")
PAYLOAD_VERSION = 1
TIMEOUT_S = 10.0
ATTEMPTS = 3


@dataclass(frozen=True)
class Notifier:
    """A declared notifier, as plain data (the runtime does not import the spec models)."""

    name: str
    url: dict[str, Any]  # secret reference {provider, name, key}
    signing_key: dict[str, Any] | None = None
    events: tuple[str, ...] = EVENTS
    environments: tuple[str, ...] = ()  # empty: every environment

    def wants(self, event: str, env: str | None) -> bool:
        return event in self.events and (not self.environments or env in self.environments)

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any]) -> Notifier:
        """From a Project's `notifications.<name>` as `model_dump()` gives it (snake case)."""
        hook = spec["webhook"]
        return cls(name, hook["url"], hook.get("signing_key"), tuple(spec.get("events") or EVENTS),
                   tuple(spec.get("environments") or ()))


@dataclass
class Delivery:
    notifier: str
    event: str
    ok: bool
    status: int | None = None
    error: str | None = None  # one line; never the URL


@dataclass
class Event:
    """One payload before it is sent; `to_dict()` is what the schema describes."""

    event: str
    project: str
    env: str | None
    source: str
    summary: str
    target: str | None = None
    revision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # the `apply`, `drift` or `breach` section
    time: str = ""

    def to_dict(self) -> dict[str, Any]:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}")
        doc = {"version": PAYLOAD_VERSION, "event": self.event, "project": self.project, "env": self.env,
               "target": self.target, "source": self.source, "revision": self.revision,
               "time": self.time or utc_now(), "summary": redact(self.summary), self.event: _redacted(self.details)}
        return doc


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _redacted(v: Any) -> Any:
    """Live values in drift diffs may hold anything: secret-shaped strings are masked."""
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, dict):
        return {k: _redacted(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_redacted(x) for x in v]
    return v


class _Retryable(Exception):
    def __init__(self, status: int | None, why: str) -> None:
        super().__init__(why)
        self.status = status


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        if e.code == 429 or e.code >= 500:
            raise _Retryable(e.code, f"HTTP {e.code}") from None
        return e.code
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Retryable(None, f"cannot connect ({type(reason).__name__})") from None


def deliver_one(n: Notifier, payload: dict[str, Any], *, timeout: float = TIMEOUT_S,
                attempts: int = ATTEMPTS, wait_s: float = 0.5) -> Delivery:
    event = payload["event"]
    try:
        url = read_secret(n.url, f"notifier '{n.name}' webhook url").strip()
        key = read_secret(n.signing_key, f"notifier '{n.name}' signing key") if n.signing_key else None
    except SecretError as e:
        return Delivery(n.name, event, False, error=str(e))
    if not url.lower().startswith(("https://", "http://")):
        return Delivery(n.name, event, False, error=f"notifier '{n.name}': the webhook url is not an http(s) URL")
    body = (json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()
    headers = {"Content-Type": "application/json", "User-Agent": "specops", "X-Specops-Event": event,
               "X-Specops-Delivery": str(uuid.uuid4())}
    if key:
        headers["X-Specops-Signature-256"] = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    send = retry(retry=retry_if_exception_type(_Retryable), stop=stop_after_attempt(max(1, attempts)),
                 wait=wait_exponential(multiplier=wait_s, max=10), reraise=True)(_post)
    try:
        status = send(url, body, headers, timeout)
    except (_Retryable, RetryError) as e:
        return Delivery(n.name, event, False, getattr(e, "status", None),
                        f"notifier '{n.name}': delivery failed after {attempts} attempt(s): {e}")
    if not 200 <= status < 300:
        return Delivery(n.name, event, False, status, f"notifier '{n.name}': the webhook answered HTTP {status}")
    return Delivery(n.name, event, True, status)


def deliver(notifiers: Iterable[Notifier], event: Event, **kw: Any) -> list[Delivery]:
    """Send `event` to every notifier that wants it (its events and environments)."""
    chosen = [n for n in notifiers if n.wants(event.event, event.env)]
    if not chosen:
        return []
    payload = event.to_dict()
    return [deliver_one(n, payload, **kw) for n in chosen]
