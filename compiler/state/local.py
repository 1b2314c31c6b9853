"""The local state store: one JSON file per environment, atomic writes, backups, a lock file.

Layout under `<root>/<state.path>/`:
    <env>.state.json            current state
    <env>.state.json.<N>.bak    the previous versions (serial N), newest 5 kept
    <env>.state.lock            lock: JSON `LockInfo`, created atomically (exclusive create)
    <env>.history.json          the apply history (specops.state.history)
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import ContextManager

import filelock

from specops.fsio import fsync_dir as _fsync_dir
from specops.fsio import write_atomic
from specops.state.base import (
    _HELD_LOCK_IDS,
    DEFAULT_STALE_AFTER,
    KEEP_BACKUPS,
    MUTEX_TIMEOUT,
    LockHeld,
    LockInfo,
    State,
    StateError,
    _pid_alive,
    backup_name,
    backup_serials,
    check_env,
    check_follows,
    genesis,
    hold_lock,
    prepare_write,
)
from specops.state.history import append_entry, history_name, parse_history

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
        data = self._read_bytes()
        return None if data is None else self._parse(data)

    def _read_bytes(self) -> bytes | None:
        """The stored bytes, None when there is no state yet. A state file that is gone while
        its backups are not was deleted: refused (a fresh history would apply everything again)."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            serials = self.backups()
            if serials:
                newest = self.backup_path(serials[-1])
                raise StateError(f"{self.path}: the state file is missing but its backups are not; nothing "
                                 f"was changed; to restore, copy the newest backup {newest} over {self.path}") from None
            return None
        except OSError as e:
            raise StateError(f"{self.path}: cannot read state ({e.strerror or e})") from None

    def _parse(self, data: bytes) -> State:
        """Parse the stored bytes and check them against the newest backup (lineage, serial)."""
        try:
            state = State.from_bytes(data, str(self.path))
        except StateError as e:
            raise StateError(f"{e}; nothing was changed; {self._restore_hint()}") from None
        if state.env != self.env:
            raise StateError(f"{self.path}: holds state for env {state.env!r}, not {self.env!r}")
        serials = self.backups()
        if serials:
            bp = self.backup_path(serials[-1])
            try:
                backup_data = bp.read_bytes()
                backup = State.from_bytes(backup_data, str(bp))
            except (OSError, StateError) as e:
                raise StateError(f"{bp}: the newest backup cannot be read to check the state against "
                                 f"({e}); nothing was changed") from None
            check_follows(state, data, backup, backup_data, str(self.path), str(bp))
        return state

    def write(self, state: State) -> None:
        self._check_not_locked_by_other()
        current_bytes = self._read_bytes()
        # A corrupt, edited or replaced current state is a StateError here: nothing is overwritten.
        current = self._parse(current_bytes) if current_bytes is not None else None
        serial = prepare_write(state, current, self.env, str(self.path))
        new = State(version=state.version, serial=serial, lineage=state.lineage, env=state.env,
                    resources=state.resources, gates=state.gates, pending=state.pending, monitors=state.monitors)
        data = new.to_bytes()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if current is not None and current_bytes is not None:
                atomic_write(self.backup_path(current.serial), current_bytes)
            else:  # the empty version this history starts from
                atomic_write(self.backup_path(serial - 1), genesis(new, serial - 1).to_bytes())
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

    # -- history ---------------------------------------------------------------------

    @property
    def history_path(self) -> Path:
        return self.directory / history_name(self.env)

    def read_history(self) -> list[dict]:
        try:
            data = self.history_path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as e:
            raise StateError(f"{self.history_path}: cannot read the apply history ({e.strerror or e})") from None
        return parse_history(data, self.env, str(self.history_path))

    def append_history(self, entry: dict, keep: int | None = None) -> None:
        """Append one entry (under the caller's state lock)."""
        data = append_entry(self.read_history(), entry, self.env, keep)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(self.history_path, data)
        except OSError as e:
            raise StateError(f"{self.history_path}: cannot write the apply history ({e.strerror or e})") from None

    # -- lock ------------------------------------------------------------------------

    def current_lock(self) -> LockInfo | None:
        """The held lock, or None. An unreadable lock file is a StateError."""
        try:
            data = self.lock_path.read_bytes()
        except FileNotFoundError:
            return None
        return LockInfo.from_bytes(data, str(self.lock_path))

    def _check_not_locked_by_other(self) -> None:
        info = self.current_lock()
        if info is not None and info.id not in _HELD_LOCK_IDS:
            raise LockHeld(self.env, info)

    def _mutex(self) -> filelock.FileLock:
        """A short-held OS lock (filelock) around every look at or change of the lock record,
        so creating, taking over and releasing it never race; the record itself (JSON, owner,
        pid, host, time) stays for people, `force-unlock` and the stale-lock policy. The OS
        drops it when its process dies, so a crash never wedges it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.lock_path) + ".mutex", timeout=MUTEX_TIMEOUT)

    def _guarded(self, what: str):
        try:
            return self._mutex()
        except OSError as e:
            raise StateError(f"{self.lock_path}: cannot {what} ({e.strerror or e})") from None

    def _try_lock(self, info: LockInfo) -> bool:
        try:
            with self._guarded("create the lock"):
                if self.lock_path.exists():
                    return False
                write_atomic(self.lock_path, info.to_bytes(), durable=True)
                return True
        except filelock.Timeout:
            return False
        except OSError as e:
            raise StateError(f"{self.lock_path}: cannot create lock ({e.strerror or e})") from None

    def _take_over(self, held: LockInfo) -> bool:
        """Remove `held` if its pid is dead on this host (never by age alone: a slow apply on
        another machine looks just like an abandoned one)."""
        if held.host != socket.gethostname() or _pid_alive(held.pid):
            return False
        try:
            with self._guarded("take over the lock"):
                cur = self.current_lock()
                if cur is not None and cur.id == held.id:
                    self.lock_path.unlink()
                    _fsync_dir(self.directory)
                    return True
                return cur is None
        except (filelock.Timeout, StateError, FileNotFoundError):
            return False

    def lock(self, operation: str, *, stale_after: float = DEFAULT_STALE_AFTER,
             timeout: float = 0.0) -> ContextManager[LockInfo]:
        return hold_lock(self, operation, stale_after=stale_after, timeout=timeout)

    def _release(self, lock_id: str) -> None:
        with contextlib.suppress(filelock.Timeout, StateError, OSError):
            with self._guarded("release the lock"):
                held = self.current_lock()
                if held is not None and held.id == lock_id:
                    self.lock_path.unlink()
                    _fsync_dir(self.directory)

    def force_unlock(self, lock_id: str) -> None:
        held = self.current_lock()
        if held is None:
            raise StateError(f"state for env '{self.env}' is not locked ({self.lock_path} does not exist)")
        if held.id != lock_id:
            raise StateError(f"lock id {lock_id} does not match the lock on env '{self.env}' "
                             f"(held by {held.owner}, pid {held.pid}, lock id {held.id}); nothing released")
        with self._guarded("release the lock"):
            self.lock_path.unlink(missing_ok=True)
            _fsync_dir(self.directory)


