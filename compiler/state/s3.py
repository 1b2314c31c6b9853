"""State in S3: the local store's layout as objects, with S3 conditional writes for safety.

Objects under `s3://<bucket>/<prefix>/`:
    <env>.state.json            current state (same JSON as the local store, schema version 1)
    <env>.state.json.<N>.bak    previous versions (serial N), newest 5 kept
    <env>.state.lock            lock: JSON `LockInfo`
    <env>.history.json          the apply history (specops.state.history)

The lock is created with `PutObject If-None-Match: *` (HTTP 412 = someone holds it); state is
replaced with `PutObject If-Match: <ETag of what was read>` (412 = someone else wrote since),
and the lock is released with `DeleteObject If-Match`. No DynamoDB table is needed.

boto3 is imported only when a client is first needed. `AWS_ENDPOINT_URL` is honoured (moto
in tests, MinIO / LocalStack elsewhere).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ContextManager

from specops.state.base import (
    _HELD_LOCK_IDS,
    DEFAULT_STALE_AFTER,
    KEEP_BACKUPS,
    LockHeld,
    LockInfo,
    State,
    StateError,
    backup_name,
    backup_serials,
    check_env,
    check_follows,
    genesis,
    hold_lock,
    prepare_write,
)
from specops.state.history import append_entry, history_name, parse_history


# User metadata specops puts on every version it writes (S3 lower-cases the keys).
_META_LINEAGE = "specops-lineage"
_META_SERIAL = "specops-serial"


def _meta(state: State) -> dict[str, str]:
    return {_META_LINEAGE: state.lineage, _META_SERIAL: str(state.serial)}


def _status(e: Exception) -> tuple[str, int]:
    resp = getattr(e, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _is_precondition(e: Exception) -> bool:
    code, status = _status(e)
    return status == 412 or code == "PreconditionFailed"


def _is_conflict(e: Exception) -> bool:
    # AWS answers 409 ConditionalRequestConflict when two conditional writes race.
    code, status = _status(e)
    return status == 409 or code == "ConditionalRequestConflict"


def _is_missing(e: Exception) -> bool:
    code, status = _status(e)
    return code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket")


class S3Store:
    """State for one environment in an S3 bucket (see the module docstring for layout)."""

    def __init__(self, bucket: str, env: str, *, prefix: str | None = None, region: str | None = None,
                 endpoint_url: str | None = None, client: Any = None,
                 keep_backups: int = KEEP_BACKUPS) -> None:
        self.env = check_env(env)
        self.bucket = bucket
        self.prefix = (prefix or "").strip("/")
        self.region = region
        self.endpoint_url = endpoint_url
        self.keep_backups = keep_backups
        base = f"{self.prefix}/" if self.prefix else ""
        self.key = f"{base}{env}.state.json"
        self.lock_key = f"{base}{env}.state.lock"
        self.history_key = f"{base}{history_name(env)}"
        self._client = client
        # What the last read/write saw: conditional writes are made against this ETag.
        self._seen = False
        self._etag: str | None = None
        self._current: State | None = None
        self.took_over: LockInfo | None = None  # never: S3 locks are released by force-unlock
        self._current_bytes: bytes | None = None

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise StateError("the s3 state backend needs boto3: pip install 'specops[sagemaker]'") from None
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
            # Path-style addressing for custom endpoints: `bucket.127.0.0.1` does not resolve.
            config = Config(s3={"addressing_style": "path"}) if endpoint else None
            self._client = boto3.client("s3", region_name=self.region, endpoint_url=endpoint, config=config)
        return self._client

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        """Call the S3 API; turn transport/credential/bucket errors into one-line StateErrors.

        Precondition failures and missing keys propagate (callers give them meaning).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kw)
        except ClientError as e:
            if _is_precondition(e) or _is_conflict(e) or _is_missing(e):
                raise
            code, status = _status(e)
            if code == "NoSuchBucket":
                raise StateError(f"s3://{self.bucket}: bucket does not exist (state.bucket in specops.yaml)") from None
            msg = e.response.get("Error", {}).get("Message", "")
            raise StateError(f"s3://{self.bucket}/{kw.get('Key', '')}: {what} failed: {code or status} {msg}".rstrip()) from None
        except BotoCoreError as e:
            raise StateError(f"s3://{self.bucket}/{kw.get('Key', '')}: {what} failed: {e}") from None

    def _get_object(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            resp = self._call("read", self.client.get_object, Key=key)
        except ClientError as e:
            if _is_missing(e):
                return None
            raise StateError(f"s3://{self.bucket}/{key}: read failed: {_status(e)[0]}") from None
        return {"body": resp["Body"].read(), "etag": resp["ETag"], "metadata": resp.get("Metadata") or {}}

    def _get(self, key: str) -> tuple[bytes, str] | None:
        got = self._get_object(key)
        return None if got is None else (got["body"], got["etag"])

    def _put_version(self, key: str, state: State, data: bytes, **cond: Any) -> Any:
        """Put one version of the state, its lineage and serial in the object's metadata: a
        version uploaded or edited by hand does not carry them (or carries others)."""
        return self._call("backup" if key != self.key else "write", self.client.put_object, Key=key, Body=data,
                          ContentType="application/json", Metadata=_meta(state), **cond)

    # -- state -----------------------------------------------------------------------

    def backups(self) -> list[int]:
        """Serials of the kept backups, oldest first."""
        names: list[str] = []
        kw: dict[str, Any] = {"Prefix": f"{self.key}."}
        while True:
            resp = self._call("list", self.client.list_objects_v2, **kw)
            names += [o["Key"].rsplit("/", 1)[-1] for o in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                break
            kw["ContinuationToken"] = resp["NextContinuationToken"]
        return backup_serials(self.key.rsplit("/", 1)[-1], names)

    def backup_key(self, serial: int) -> str:
        return backup_name(self.key, serial)

    def read_backup(self, serial: int) -> State:
        got = self._get(self.backup_key(serial))
        where = f"s3://{self.bucket}/{self.backup_key(serial)}"
        if got is None:
            raise StateError(f"{where}: no such backup")
        return State.from_bytes(got[0], where)

    def _restore_hint(self) -> str:
        try:
            serials = self.backups()
        except StateError:
            serials = []
        if not serials:
            return "no backup to restore from"
        return f"newest backup to restore from: s3://{self.bucket}/{self.backup_key(serials[-1])} (serial {serials[-1]})"

    def read(self) -> State | None:
        got = self._get_object(self.key)
        if got is None:
            serials = self.backups()
            if serials:  # deleted: a fresh history would apply everything again
                newest = f"s3://{self.bucket}/{self.backup_key(serials[-1])}"
                raise StateError(f"{self.where}: the state object is missing but its backups are not; nothing "
                                 f"was changed; to restore, copy the newest backup {newest} over {self.where}")
            self._seen, self._etag, self._current, self._current_bytes = True, None, None, None
            return None
        data, etag = got["body"], got["etag"]
        try:
            state = State.from_bytes(data, self.where)
        except StateError as e:
            raise StateError(f"{e}; nothing was changed; {self._restore_hint()}") from None
        if state.env != self.env:
            raise StateError(f"{self.where}: holds state for env {state.env!r}, not {self.env!r}")
        self._check_version(state, data, got["metadata"])
        self._seen, self._etag, self._current, self._current_bytes = True, etag, state, data
        return State.from_bytes(data, self.where)  # a fresh copy: the caller may mutate theirs

    def _check_version(self, state: State, data: bytes, meta: dict[str, str]) -> None:
        """Lineage and serial against what specops recorded in the object's metadata when it
        wrote it; an object without that metadata (uploaded by hand, or written by an older
        specops) is checked against its newest backup instead."""
        if _META_LINEAGE in meta or _META_SERIAL in meta:
            if meta.get(_META_LINEAGE) == state.lineage and meta.get(_META_SERIAL) == str(state.serial):
                return
            raise StateError(
                f"{self.where}: holds lineage {state.lineage} serial {state.serial}, but specops wrote lineage "
                f"{meta.get(_META_LINEAGE)} serial {meta.get(_META_SERIAL)} (the object's metadata): it was edited or "
                f"replaced outside specops; nothing was changed; {self._restore_hint()}")
        serials = self.backups()
        if not serials:
            return
        where = f"s3://{self.bucket}/{self.backup_key(serials[-1])}"
        got = self._get(self.backup_key(serials[-1]))
        if got is None:
            return  # rotated away between the listing and the read
        try:
            backup = State.from_bytes(got[0], where)
        except StateError as e:
            raise StateError(f"{where}: the newest backup cannot be read to check the state against ({e}); "
                             "nothing was changed") from None
        check_follows(state, data, backup, got[0], self.where, where)

    def write(self, state: State) -> None:
        from botocore.exceptions import ClientError

        self._check_not_locked_by_other()
        if not self._seen:
            self.read()  # a corrupt current state raises here: nothing is overwritten
        current, current_bytes, etag = self._current, self._current_bytes, self._etag
        serial = prepare_write(state, current, self.env, self.where)
        new = State(version=state.version, serial=serial, lineage=state.lineage, env=state.env,
                    resources=state.resources, gates=state.gates, pending=state.pending, monitors=state.monitors)
        data = new.to_bytes()
        if current is not None and current_bytes is not None:
            self._put_version(self.backup_key(current.serial), current, current_bytes)
        else:  # the empty version this history starts from
            start = genesis(new, serial - 1)
            self._put_version(self.backup_key(serial - 1), start, start.to_bytes())
        cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            resp = self._put_version(self.key, new, data, **cond)
        except ClientError as e:
            if _is_precondition(e) or _is_conflict(e):
                self._seen = False
                raise StateError(f"{self.where}: state changed since it was read (another writer); "
                                 f"nothing was written; re-run to plan against the current state") from None
            raise
        state.serial = serial
        self._seen, self._etag, self._current, self._current_bytes = True, resp.get("ETag"), new, data
        self._rotate_backups()

    def _rotate_backups(self) -> None:
        serials = self.backups()
        for s in serials[: max(0, len(serials) - self.keep_backups)]:
            self._call("delete backup", self.client.delete_object, Key=self.backup_key(s))

    # -- history ---------------------------------------------------------------------

    def read_history(self) -> list[dict]:
        got = self._get(self.history_key)
        return parse_history(got[0] if got else None, self.env, f"s3://{self.bucket}/{self.history_key}")

    def append_history(self, entry: dict, keep: int | None = None) -> None:
        """Append one entry (under the caller's state lock)."""
        data = append_entry(self.read_history(), entry, self.env, keep)
        self._call("write history", self.client.put_object, Key=self.history_key, Body=data,
                   ContentType="application/json")

    # -- lock ------------------------------------------------------------------------

    def _lock_object(self) -> tuple[LockInfo, str] | None:
        got = self._get(self.lock_key)
        if got is None:
            return None
        return LockInfo.from_bytes(got[0], f"s3://{self.bucket}/{self.lock_key}"), got[1]

    def current_lock(self) -> LockInfo | None:
        got = self._lock_object()
        return got[0] if got else None

    def _check_not_locked_by_other(self) -> None:
        info = self.current_lock()
        if info is not None and info.id not in _HELD_LOCK_IDS:
            raise LockHeld(self.env, info)

    def _try_lock(self, info: LockInfo) -> bool:
        """Create the lock object only if none exists (`If-None-Match: *`)."""
        from botocore.exceptions import ClientError

        try:
            self._call("lock", self.client.put_object, Key=self.lock_key, Body=info.to_bytes(),
                       ContentType="application/json", IfNoneMatch="*")
            return True
        except ClientError as e:
            if _is_precondition(e) or _is_conflict(e):
                return False
            raise StateError(f"s3://{self.bucket}/{self.lock_key}: lock failed: {_status(e)[0]}") from None

    def _take_over(self, held: LockInfo) -> bool:
        return False  # whether a remote holder is gone cannot be told from here: force-unlock

    def _release(self, lock_id: str) -> None:
        with contextlib.suppress(StateError):
            self._delete_lock_if(lock_id)

    def lock(self, operation: str, *, stale_after: float = DEFAULT_STALE_AFTER,
             timeout: float = 0.0) -> ContextManager[LockInfo]:
        return hold_lock(self, operation, stale_after=stale_after, timeout=timeout)

    def _delete_lock_if(self, lock_id: str) -> bool:
        """Delete the lock object if it still carries `lock_id` (conditional on its ETag)."""
        from botocore.exceptions import ClientError

        got = self._lock_object()
        if got is None or got[0].id != lock_id:
            return False
        try:
            self._call("unlock", self.client.delete_object, Key=self.lock_key, IfMatch=got[1])
        except ClientError as e:
            if _is_missing(e):
                return False
            if _is_precondition(e) or _is_conflict(e):
                return False  # replaced in between: not ours any more
            raise
        return True

    def force_unlock(self, lock_id: str) -> None:
        held = self.current_lock()
        if held is None:
            raise StateError(f"state for env '{self.env}' is not locked (s3://{self.bucket}/{self.lock_key} does not exist)")
        if held.id != lock_id:
            raise StateError(f"lock id {lock_id} does not match the lock on env '{self.env}' "
                             f"(held by {held.owner}, pid {held.pid}, lock id {held.id}); nothing released")
        if not self._delete_lock_if(lock_id):
            raise StateError(f"lock {lock_id} on env '{self.env}' changed while releasing it; nothing released")
