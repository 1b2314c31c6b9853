"""Per-environment state: what `apply` last did, and the lock that keeps two applies apart.

State file format (schema version 1): one JSON object, keys sorted, indent 2, trailing newline:

    {"env": ..., "gates": {...}, "lineage": "<uuid4>", "resources": {"<address>": {...}},
     "serial": N, "version": 1}

Local store layout under `<root>/<state.path>/`:
    <env>.state.json            current state
    <env>.state.json.<N>.bak    the previous versions (serial N), newest 5 kept
    <env>.state.lock            lock: JSON `LockInfo`, created atomically (exclusive create)

The S3 store (same layout as objects, conditional writes for locking) lives in
`state_s3.py`; `open_store` picks one from the Project's `state:` block. Only the stdlib is
used here so the CLI can import this module at start-up.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import re
import socket
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager, Iterator, Protocol

from .fsio import fsync_dir as _fsync_dir
from .fsio import write_atomic

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

    @classmethod
    def new(cls, env: str) -> "State":
        """An empty state for `env` with a fresh lineage (serial 0: nothing written yet)."""
        return cls(env=env)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "serial": self.serial,
            "lineage": self.lineage,
            "env": self.env,
            "resources": {a: asdict(r) if isinstance(r, ResourceState) else dict(r)
                          for a, r in self.resources.items()},
            "gates": self.gates,
        }

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
        expected = {"version", "serial", "lineage", "env", "resources", "gates"}
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
                   resources=resources, gates=dict(doc["gates"]))


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
    def lock(self, operation: str, *, stale_after: float = DEFAULT_STALE_AFTER) -> ContextManager[LockInfo]: ...
    def force_unlock(self, lock_id: str) -> None: ...


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
    return max(state.serial, current.serial) + 1


def backup_name(state_name: str, serial: int) -> str:
    return f"{state_name}.{serial}.bak"


def backup_serials(state_name: str, names: list[str]) -> list[int]:
    """Serials of the backups of `state_name` among `names`, oldest first."""
    pat = re.compile(re.escape(state_name) + r"\.(\d+)\.bak$")
    return sorted(int(m.group(1)) for n in names if (m := pat.match(n)))


# ---------------------------------------------------------------------------------------
# Local store


def _replace(src: str, dst: Path) -> None:
    os.replace(src, dst)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` crash-safely: temp file, fsync, rename over, fsync the directory
    (fsio.write_atomic). The rename goes through `_replace`, which tests inject faults into."""
    write_atomic(path, data, durable=True, replace=lambda src, dst: _replace(src, dst))


class LocalStore:
    """State for one environment in a local directory (see the module docstring for layout)."""

    def __init__(self, directory: Path, env: str, *, keep_backups: int = KEEP_BACKUPS) -> None:
        self.env = check_env(env)
        self.directory = Path(directory)
        self.path = self.directory / f"{env}.state.json"
        self.lock_path = self.directory / f"{env}.state.lock"
        self.keep_backups = keep_backups
        # The lock of a dead process that lock() removed, for the CLI to say so.
        self.took_over: LockInfo | None = None

    @property
    def where(self) -> str:
        return str(self.path)

    # -- state -----------------------------------------------------------------------

    def backups(self) -> list[int]:
        """Serials of the kept backups, oldest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return backup_serials(self.path.name, names)

    def backup_path(self, serial: int) -> Path:
        return self.directory / backup_name(self.path.name, serial)

    def read_backup(self, serial: int) -> State:
        p = self.backup_path(serial)
        try:
            return State.from_bytes(p.read_bytes(), str(p))
        except OSError as e:
            raise StateError(f"{p}: cannot read backup ({e.strerror or e})") from None

    def _restore_hint(self) -> str:
        serials = self.backups()
        if not serials:
            return "no backup to restore from"
        newest = self.backup_path(serials[-1])
        return f"newest backup to restore from: {newest} (serial {serials[-1]})"

    def read(self) -> State | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"{self.path}: cannot read state ({e.strerror or e})") from None
        return self._parse(data)

    def _parse(self, data: bytes) -> State:
        try:
            state = State.from_bytes(data, str(self.path))
        except StateError as e:
            raise StateError(f"{e}; nothing was changed; {self._restore_hint()}") from None
        if state.env != self.env:
            raise StateError(f"{self.path}: holds state for env {state.env!r}, not {self.env!r}")
        return state

    def write(self, state: State) -> None:
        self._check_not_locked_by_other()
        current_bytes: bytes | None
        try:
            current_bytes = self.path.read_bytes()
        except FileNotFoundError:
            current_bytes = None
        except OSError as e:
            raise StateError(f"{self.path}: cannot read state ({e.strerror or e})") from None
        # A corrupt current state is a StateError here: nothing is overwritten.
        current = self._parse(current_bytes) if current_bytes is not None else None
        serial = prepare_write(state, current, self.env, str(self.path))
        new = State(version=state.version, serial=serial, lineage=state.lineage, env=state.env,
                    resources=state.resources, gates=state.gates)
        data = new.to_bytes()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if current is not None and current_bytes is not None:
                atomic_write(self.backup_path(current.serial), current_bytes)
            atomic_write(self.path, data)
        except OSError as e:
            raise StateError(f"{self.path}: cannot write state ({e.strerror or e}); the previous state is intact") from None
        state.serial = serial  # the caller's object now matches what is stored
        self._rotate_backups()

    def _rotate_backups(self) -> None:
        serials = self.backups()
        for s in serials[: max(0, len(serials) - self.keep_backups)]:
            with contextlib.suppress(FileNotFoundError):
                self.backup_path(s).unlink()

    # -- lock ------------------------------------------------------------------------

    def current_lock(self) -> LockInfo | None:
        """The held lock, or None. An unreadable lock file is a StateError."""
        for attempt in range(20):
            try:
                data = self.lock_path.read_bytes()
            except FileNotFoundError:
                return None
            if data.strip() or attempt == 19:
                break
            time.sleep(0.05)  # only the O_EXCL fallback leaves a moment with an empty file
        return LockInfo.from_bytes(data, str(self.lock_path))

    def _check_not_locked_by_other(self) -> None:
        info = self.current_lock()
        if info is not None and info.id not in _HELD_LOCK_IDS:
            raise LockHeld(self.env, info)

    def _create_lock_file(self, info: LockInfo) -> bool:
        """Create the lock file holding `info` atomically; False if it already exists."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = info.to_bytes()
        # Write a complete temp file and hard-link it into place: link() fails with EEXIST
        # when the lock exists, and a reader never sees a half-written lock.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.lock_path.name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.lock_path)
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                # Filesystem without hard links: plain exclusive create.
                try:
                    lfd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(lfd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _fsync_dir(self.directory)
        return True

    @contextlib.contextmanager
    def lock(self, operation: str, *, stale_after: float = DEFAULT_STALE_AFTER) -> Iterator[LockInfo]:
        info = LockInfo.new(operation)
        for _ in range(5):
            try:
                if self._create_lock_file(info):
                    break
            except OSError as e:
                raise StateError(f"{self.lock_path}: cannot create lock ({e.strerror or e})") from None
            held = self.current_lock()
            if held is not None:
                if self._take_over_dead(held):
                    # Its process died (kill -9, OOM, a lost machine session) on this very
                    # host: nothing can be writing under it, so the next run proceeds.
                    self.took_over = held
                    continue
                raise LockHeld(self.env, held, stale_reason(held, stale_after))
            # Released between our attempt and the read: try again.
        else:
            raise StateError(f"{self.lock_path}: could not take the lock (it keeps changing hands)")
        _HELD_LOCK_IDS.add(info.id)
        try:
            yield info
        finally:
            _HELD_LOCK_IDS.discard(info.id)
            self._release(info.id)

    def _take_over_dead(self, held: LockInfo) -> bool:
        """Remove `held` if its pid is dead on this host (never by age alone: a slow apply on
        another machine looks just like an abandoned one). A short-lived takeover file makes
        sure two processes racing to do this cannot delete each other's fresh lock."""
        if held.host != socket.gethostname() or _pid_alive(held.pid):
            return False
        mutex = self.lock_path.with_name(self.lock_path.name + ".takeover")
        try:
            fd = os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - mutex.stat().st_mtime > 60:  # left by a takeover that died
                    mutex.unlink()
            return False
        except OSError:
            return False
        try:
            os.close(fd)
            cur = self.current_lock()
            if cur is not None and cur.id == held.id:
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()
                _fsync_dir(self.directory)
                return True
            return cur is None
        except StateError:
            return False
        finally:
            with contextlib.suppress(OSError):
                mutex.unlink()

    def _release(self, lock_id: str) -> None:
        try:
            held = self.current_lock()
        except StateError:
            return
        if held is not None and held.id == lock_id:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
            _fsync_dir(self.directory)

    def force_unlock(self, lock_id: str) -> None:
        held = self.current_lock()
        if held is None:
            raise StateError(f"state for env '{self.env}' is not locked ({self.lock_path} does not exist)")
        if held.id != lock_id:
            raise StateError(f"lock id {lock_id} does not match the lock on env '{self.env}' "
                             f"(held by {held.owner}, pid {held.pid}, lock id {held.id}); nothing released")
        self.lock_path.unlink()
        _fsync_dir(self.directory)


def open_store(project_spec_state: Any, env: str, root: Path) -> StateStore:
    """The store for `env` as the Project's `state:` block (specs.project.StateBackend) says."""
    backend = getattr(project_spec_state, "backend", "local") if project_spec_state is not None else "local"
    if backend == "local":
        path = getattr(project_spec_state, "path", None) or ".specops/state"
        return LocalStore(Path(root) / path, env)
    if backend == "s3":
        bucket = getattr(project_spec_state, "bucket", None)
        if not bucket:
            raise StateError("state.backend is 's3' but state.bucket is not set in specops.yaml")
        from .state_s3 import S3Store

        return S3Store(bucket, env, prefix=getattr(project_spec_state, "prefix", None),
                       region=getattr(project_spec_state, "region", None))
    raise StateError(f"state.backend {backend!r} is not supported (local, s3)")
