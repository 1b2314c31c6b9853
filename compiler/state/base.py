"""State as data, shared by every store: the document, its checks, and the lock record.

State file format (schema version 1): one JSON object, keys sorted, indent 2, trailing newline:

    {"env": ..., "gates": {...}, "lineage": "<uuid4>", "resources": {"<address>": {...}},
     "serial": N, "version": 1}

plus, only while an action is in flight, `"pending": {"<address>": {"action", "content_hash",
"run_key"}}`: the intent `apply` records before any work starts, so a run interrupted by a
crash is adopted by the next apply instead of repeated (see specops.ops.apply).

Stores (`local`, `s3`) import only this module; `specops.state.open_store` picks one.
Only the standard library is used, so the CLI can import it at start-up.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, ContextManager, Iterator, Protocol

SCHEMA_VERSION = 1
KEEP_BACKUPS = 5
DEFAULT_STALE_AFTER = 3600.0

# Environment names become file names / object keys: keep them to one safe path component.
_ENV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Lock ids taken by this process (any store object). A write while some *other* lock is held
# is refused; tracking ids process-wide lets the engine lock through one store object and
# write through another for the same environment.
_HELD_LOCK_IDS: set[str] = set()


class StateError(Exception):
    """One human line; the CLI prints it and exits 1, never a traceback."""


@dataclass
class ResourceState:
    address: str
    type: str
    name: str
    content_hash: str
    ids: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)


def _new_lineage() -> str:
    return str(uuid.uuid4())


@dataclass
class State:
    version: int = SCHEMA_VERSION
    serial: int = 0
    lineage: str = field(default_factory=_new_lineage)
    env: str = ""
    resources: dict[str, ResourceState] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    # address -> {"action", "content_hash", "run_key"}: actions started and not yet recorded.
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    # monitor name -> {"breaches": [record, ...]} (oldest first, the last MAX_BREACHES): each
    # breach a monitor found, and the retrain run it started (specops.ops.monitor).
    monitors: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, env: str) -> "State":
        """An empty state for `env` with a fresh lineage (serial 0: nothing written yet)."""
        return cls(env=env)

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "version": self.version,
            "serial": self.serial,
            "lineage": self.lineage,
            "env": self.env,
            "resources": {a: asdict(r) if isinstance(r, ResourceState) else dict(r)
                          for a, r in self.resources.items()},
            "gates": self.gates,
        }
        if self.pending:  # only while something is in flight: a settled state reads as before
            doc["pending"] = {a: dict(sorted(i.items())) for a, i in sorted(self.pending.items())}
        if self.monitors:  # only once a monitor breached: a state without breaches reads as before
            doc["monitors"] = self.monitors
        return doc

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "State":
        """Parse and check a state document; any problem is a one-line StateError naming `where`."""
        if not data.strip():
            raise StateError(f"{where}: state file is empty")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StateError(f"{where}: state file is not UTF-8 (byte {e.start})") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            # specops writes one JSON object, so a file that stops before its closing brace was cut short.
            if e.pos >= len(text.rstrip()) or not text.rstrip().endswith("}"):
                raise StateError(f"{where}: state file is truncated ({len(data)} bytes, JSON stops at line "
                                 f"{text.count(chr(10)) + 1} before the closing brace)") from None
            raise StateError(f"{where}: state file is not valid JSON ({e.msg}: line {e.lineno} column {e.colno})") from None
        return cls.from_dict(doc, where)

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> "State":
        def bad(what: str) -> StateError:
            return StateError(f"{where}: state file is malformed: {what}")

        if not isinstance(doc, dict):
            raise bad(f"top level is {type(doc).__name__}, expected an object")
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise bad("'version' is missing or not an integer")
        if version != SCHEMA_VERSION:
            newer = " (written by a newer specops?)" if version > SCHEMA_VERSION else ""
            raise StateError(f"{where}: state schema version {version} is not supported{newer}; this specops reads version {SCHEMA_VERSION}")
        expected = {"version", "serial", "lineage", "env", "resources", "gates", "pending", "monitors"}
        unknown = sorted(set(doc) - expected)
        if unknown:
            raise bad(f"unknown key(s) {', '.join(map(repr, unknown))}")
        serial = doc.get("serial")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            raise bad("'serial' is missing or not a non-negative integer")
        for key in ("lineage", "env"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise bad(f"'{key}' is missing or not a non-empty string")
        for key in ("resources", "gates"):
            if not isinstance(doc.get(key), dict):
                raise bad(f"'{key}' is missing or not an object")
        if not isinstance(doc.get("monitors", {}), dict) or not all(
                isinstance(m, dict) and isinstance(m.get("breaches", []), list) for m in doc.get("monitors", {}).values()):
            raise bad("'monitors' is not an object of {breaches: [...]}")
        resources: dict[str, ResourceState] = {}
        required = {"address": str, "type": str, "name": str, "content_hash": str}
        optional = {"ids": dict, "outputs": dict, "attributes": dict, "depends_on": list}
        for addr, raw in doc["resources"].items():
            if not isinstance(raw, dict):
                raise bad(f"resources[{addr!r}] is not an object")
            extra = sorted(set(raw) - set(required) - set(optional))
            if extra:
                raise bad(f"resources[{addr!r}] has unknown key(s) {', '.join(map(repr, extra))}")
            for k, t in required.items():
                if not isinstance(raw.get(k), t):
                    raise bad(f"resources[{addr!r}].{k} is missing or not a {t.__name__}")
            for k, t in optional.items():
                if k in raw and not isinstance(raw[k], t):
                    raise bad(f"resources[{addr!r}].{k} is not a {'list' if t is list else 'object'}")
            if raw["address"] != addr:
                raise bad(f"resources[{addr!r}].address is {raw['address']!r}")
            resources[addr] = ResourceState(
                address=raw["address"], type=raw["type"], name=raw["name"],
                content_hash=raw["content_hash"], ids=dict(raw.get("ids", {})),
                outputs=dict(raw.get("outputs", {})), attributes=dict(raw.get("attributes", {})),
                depends_on=list(raw.get("depends_on", [])),
            )
        return cls(version=version, serial=serial, lineage=doc["lineage"], env=doc["env"],
                   resources=resources, gates=dict(doc["gates"]), pending=_pending(doc.get("pending", {}), bad),
                   monitors=dict(doc.get("monitors", {})))


_INTENT_KEYS = {"action", "content_hash", "run_key"}


def _pending(raw: Any, bad: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        raise bad("'pending' is not an object")
    for addr, intent in raw.items():
        if not isinstance(intent, dict) or set(intent) != _INTENT_KEYS or not all(
                isinstance(v, str) and v for v in intent.values()):
            raise bad(f"pending[{addr!r}] is not an intent ({', '.join(sorted(_INTENT_KEYS))})")
    return {a: dict(i) for a, i in raw.items()}


# ---------------------------------------------------------------------------------------
# Locks


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LockInfo:
    id: str
    owner: str
    pid: int
    host: str
    created: str
    operation: str

    @classmethod
    def new(cls, operation: str) -> "LockInfo":
        host = socket.gethostname()
        try:
            user = getpass.getuser()
        except Exception:  # no user name in containers without a passwd entry
            user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
        return cls(id=str(uuid.uuid4()), owner=f"{user}@{host}", pid=os.getpid(), host=host,
                   created=_utc_now_iso(), operation=operation)

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "LockInfo":
        try:
            doc = json.loads(data.decode("utf-8"))
            info = cls(id=str(doc["id"]), owner=str(doc["owner"]), pid=int(doc["pid"]),
                       host=str(doc["host"]), created=str(doc["created"]),
                       operation=str(doc["operation"]))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise StateError(f"lock {where} is unreadable ({type(e).__name__}); if no specops is running, delete it") from None
        return info

    def age_seconds(self, now: float | None = None) -> float | None:
        try:
            t = datetime.strptime(self.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        return (time.time() if now is None else now) - t.timestamp()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def stale_reason(info: LockInfo, stale_after: float) -> str | None:
    """Why a held lock looks abandoned, or None. A dead pid only counts on the same host."""
    if info.host == socket.gethostname() and not _pid_alive(info.pid):
        return f"pid {info.pid} is not running on this host"
    age = info.age_seconds()
    if age is not None and age > stale_after:
        return f"it is {int(age)}s old, more than {int(stale_after)}s"
    return None


class LockHeld(StateError):
    def __init__(self, env: str, info: LockInfo, stale: str | None = None) -> None:
        self.env = env
        self.info = info
        self.stale = stale
        msg = (f"state for env '{env}' is locked by {info.owner} (pid {info.pid}, {info.operation}, "
               f"since {info.created}; lock id {info.id})")
        if stale:
            msg += (f"; it looks stale ({stale}): if no specops is running for it, release it "
                    f"with `specops force-unlock {info.id}`")
        super().__init__(msg)


class StateStore(Protocol):
    env: str

    def read(self) -> State | None: ...
    def write(self, state: State) -> None: ...
    def lock(self, operation: str, *, stale_after: float = DEFAULT_STALE_AFTER,
             timeout: float = 0.0) -> ContextManager[LockInfo]: ...
    def force_unlock(self, lock_id: str) -> None: ...
    def read_history(self) -> list[dict[str, Any]]: ...
    def append_history(self, entry: dict[str, Any], keep: int | None = None) -> None: ...


class LockRecord(Protocol):
    """What a store provides for `hold_lock`: an atomic create-if-absent of the lock record,
    a read of it, a takeover of one whose holder is gone (or never), and a release."""

    env: str
    took_over: LockInfo | None

    def current_lock(self) -> LockInfo | None: ...
    def _try_lock(self, info: LockInfo) -> bool: ...
    def _take_over(self, held: LockInfo) -> bool: ...
    def _release(self, lock_id: str) -> None: ...


LOCK_POLL_S = 0.5
MUTEX_TIMEOUT = 10.0  # the local store's short-held OS mutex (filelock)
_RACES = 20  # a lock released between our attempt and our read, this many times in a row


@contextlib.contextmanager
def hold_lock(store: LockRecord, operation: str, *, stale_after: float = DEFAULT_STALE_AFTER,
              timeout: float = 0.0) -> Iterator[LockInfo]:
    """Take the store's lock for `operation`, waiting up to `timeout` seconds for a holder to
    finish (`--lock-timeout`), hold it for the `with` block, release it after. The one lock
    loop of every store. A holder the store can tell is gone (a dead pid on this host) is
    taken over, and said so through `store.took_over`; any other holder is a LockHeld naming
    it, with `force-unlock` advice when it looks stale."""
    info = LockInfo.new(operation)
    deadline = time.monotonic() + max(0.0, timeout)
    races = 0
    while not store._try_lock(info):
        held = store.current_lock()
        if held is None:
            races += 1
            if races > _RACES:
                raise StateError(f"state lock for env '{store.env}' keeps changing hands; try again")
            continue  # released between our attempt and the read
        if store._take_over(held):
            # Its process died (kill -9, OOM, a lost session) on this very host: nothing can
            # be writing under it, so this run proceeds.
            store.took_over = held
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockHeld(store.env, held, stale_reason(held, stale_after))
        time.sleep(min(LOCK_POLL_S, remaining))
    _HELD_LOCK_IDS.add(info.id)
    try:
        yield info
    finally:
        _HELD_LOCK_IDS.discard(info.id)
        store._release(info.id)


# ---------------------------------------------------------------------------------------
# Shared write checks (both stores)


def check_env(env: str) -> str:
    if not isinstance(env, str) or not _ENV_RE.match(env) or env in (".", ".."):
        raise StateError(f"environment name {env!r} cannot name a state file (letters, digits, '_', '.', '-')")
    return env


def prepare_write(state: State, current: State | None, env: str, where: str) -> int:
    """Check `state` may replace `current`; return the serial the new version gets."""
    if state.env != env:
        raise StateError(f"{where}: refusing to write state for env {state.env!r} into env {env!r}")
    if state.version != SCHEMA_VERSION:
        raise StateError(f"{where}: refusing to write state schema version {state.version}")
    if not state.lineage:
        raise StateError(f"{where}: refusing to write state without a lineage")
    for addr, r in state.resources.items():
        got = r.address if isinstance(r, ResourceState) else r.get("address")
        if got != addr:
            raise StateError(f"{where}: refusing to write resource {addr!r} whose address is {got!r}")
    if current is None:
        return state.serial + 1
    if state.lineage != current.lineage:
        raise StateError(f"{where}: refusing to write state of lineage {state.lineage} over lineage "
                         f"{current.lineage} (a different state history)")
    if state.serial < current.serial:
        raise StateError(f"{where}: state changed since it was read (serial {current.serial} stored, "
                         f"{state.serial} in hand); re-run to plan against the current state")
    if state.serial > current.serial:
        # Someone put an older version in place while this run held what it read.
        raise StateError(f"{where}: the stored state went backwards since it was read (serial "
                         f"{current.serial} stored, {state.serial} in hand); nothing was written; "
                         "restore the newest backup or re-run to plan against what is stored")
    return current.serial + 1


def check_follows(state: State, data: bytes, backup: State, backup_data: bytes, where: str,
                  backup_where: str) -> None:
    """The stored version must follow its newest backup: the same lineage, and the next serial
    (or the very same bytes: a write that stopped between keeping the backup and replacing
    the state). Anything else was edited or replaced outside specops: refused, naming the
    backup to restore."""
    restore = f"nothing was changed; to restore, copy the newest backup {backup_where} over {where}"
    if state.lineage != backup.lineage:
        raise StateError(f"{where}: lineage {state.lineage} is not the lineage of its newest backup "
                         f"({backup.lineage}): this state comes from another project or environment; {restore}")
    if state.serial == backup.serial + 1 or (state.serial == backup.serial and data == backup_data):
        return
    how = "jumps ahead of" if state.serial > backup.serial else "goes back behind"
    raise StateError(f"{where}: serial {state.serial} {how} its newest backup (serial {backup.serial}; "
                     f"the next version is {backup.serial + 1}): the file was edited or replaced; {restore}")


def genesis(state: State, serial: int) -> State:
    """The empty version a history starts from: kept as the first backup, so the first real
    version already has a backup to be checked against."""
    return State(version=state.version, serial=serial, lineage=state.lineage, env=state.env)


def backup_name(state_name: str, serial: int) -> str:
    return f"{state_name}.{serial}.bak"


def backup_serials(state_name: str, names: list[str]) -> list[int]:
    """Serials of the backups of `state_name` among `names`, oldest first."""
    pat = re.compile(re.escape(state_name) + r"\.(\d+)\.bak$")
    return sorted(int(m.group(1)) for n in names if (m := pat.match(n)))


