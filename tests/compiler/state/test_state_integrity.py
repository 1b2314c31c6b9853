"""State tampering: lineage and serial are checked on every read and write, against the newest
backup (local files) or the object's metadata (S3, on moto's server on 127.0.0.1); what was
edited or replaced outside specops is refused with the backup to restore, and nothing changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from specops.state import LocalStore, ResourceState, State, StateError, edit
from specops.state.s3 import S3Store
from tests.moto_server import REGION, aws_test_env, client, moto_server


def _res(name: str, h: str) -> ResourceState:
    return ResourceState(address=f"kfp_pipeline.{name}", type="kfp_pipeline", name=name, content_hash=h)


def _history(tmp_path: Path, versions: int = 3) -> tuple[LocalStore, State]:
    store = LocalStore(tmp_path / "state", "dev")
    s = State.new("dev")
    for i in range(versions):
        s.resources["kfp_pipeline.churn"] = _res("churn", f"h{i}")
        store.write(s)
    return store, s


def _edit(path: Path, **changes) -> None:
    doc = json.loads(path.read_bytes())
    doc.update(changes)
    path.write_text(json.dumps(doc, sort_keys=True, indent=2) + "\n")


def _refused(store, match: str, s: State | None = None) -> str:
    before = {p.name: p.read_bytes() for p in store.directory.iterdir()}
    with pytest.raises(StateError, match=match) as e:
        store.read()
    with pytest.raises(StateError):
        store.write(s or State.new("dev"))
    assert {p.name: p.read_bytes() for p in store.directory.iterdir()} == before, "a refused write changed files"
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_serial_jump_is_refused_naming_the_backup(tmp_path: Path) -> None:
    store, s = _history(tmp_path)
    _edit(store.path, serial=3 + 1000)
    msg = _refused(store, r"serial 1003 jumps ahead of its newest backup \(serial 2", s)
    assert f"copy the newest backup {store.backup_path(2)} over {store.path}" in msg


def test_foreign_lineage_is_refused(tmp_path: Path) -> None:
    store, s = _history(tmp_path)
    other, _ = _history(tmp_path / "other-project")
    shutil.copyfile(other.path, store.path)  # another project's state, copied over ours
    msg = _refused(store, "is not the lineage of its newest backup", s)
    assert "another project or environment" in msg and str(store.backup_path(2)) in msg


def test_serial_going_backwards_is_refused(tmp_path: Path) -> None:
    store, s = _history(tmp_path, versions=4)
    shutil.copyfile(store.backup_path(1), store.path)  # an older version put back by hand
    _refused(store, r"serial 1 goes back behind its newest backup \(serial 3", s)


def test_first_version_is_checked_too(tmp_path: Path) -> None:
    # The empty start of a history is kept as backup 0, so even serial 1 has a backup.
    store, s = _history(tmp_path, versions=1)
    assert store.backups() == [0]
    _edit(store.path, lineage="00000000-0000-4000-8000-000000000000")
    _refused(store, "lineage", s)


def test_deleted_state_with_backups_is_refused(tmp_path: Path) -> None:
    store, s = _history(tmp_path)
    store.path.unlink()
    msg = _refused(store, "missing but its backups are not", s)
    assert str(store.backup_path(2)) in msg


def test_restoring_the_named_backup_is_accepted(tmp_path: Path) -> None:
    store, s = _history(tmp_path)
    good = store.backup_path(2).read_bytes()
    _edit(store.path, serial=1003)
    with pytest.raises(StateError):
        store.read()
    shutil.copyfile(store.backup_path(2), store.path)  # what the message says to do
    restored = store.read()
    assert restored.serial == 2 and restored.to_bytes() == good
    restored.gates["g"] = {"passed": True}
    store.write(restored)
    assert store.read().serial == 3


def test_a_write_stopped_between_backup_and_state_is_not_tampering(tmp_path: Path) -> None:
    # The backup of serial 3 was written, the state was not replaced: both hold serial 3.
    store, s = _history(tmp_path)
    shutil.copyfile(store.path, store.backup_path(3))
    assert store.read().serial == 3
    store.write(s)
    assert store.read().serial == 4


def test_stored_state_going_backwards_during_a_run_is_refused_at_write(tmp_path: Path) -> None:
    store, s = _history(tmp_path)
    held = store.read()  # serial 3, as apply holds it
    shutil.copyfile(store.backup_path(2), store.path)  # someone restores serial 2 meanwhile
    with pytest.raises(StateError, match=r"went backwards since it was read \(serial 2 stored, 3 in hand\)"):
        store.write(held)


@pytest.mark.parametrize("damage", [
    lambda d: d.update(serial=-1), lambda d: d.update(serial=True), lambda d: d.update(lineage=""),
    lambda d: d.update(env="prod"), lambda d: d.update(resources=[]), lambda d: d.pop("gates"),
    lambda d: d.update(extra=1), lambda d: d["resources"]["kfp_pipeline.churn"].update(address="x"),
    lambda d: d["resources"]["kfp_pipeline.churn"].pop("content_hash"),
])
def test_malformed_documents_are_refused(tmp_path: Path, damage) -> None:
    store, s = _history(tmp_path)
    doc = json.loads(store.path.read_bytes())
    damage(doc)
    store.path.write_text(json.dumps(doc))
    _refused(store, str(store.path).replace("\\", "\\\\"), s)


def test_state_commands_keep_every_version(tmp_path: Path) -> None:
    store, s = _history(tmp_path)
    s.resources["kfp_pipeline.other"] = _res("other", "o")
    store.write(s)
    before = store.path.read_bytes()
    edit.move(store, "kfp_pipeline.other", "kfp_pipeline.renamed")
    assert store.backup_path(4).read_bytes() == before
    moved = store.path.read_bytes()
    edit.remove(store, "kfp_pipeline.renamed")
    assert store.backup_path(5).read_bytes() == moved
    assert store.read().serial == 6
    # A refused command writes nothing.
    with pytest.raises(StateError):
        edit.remove(store, "kfp_pipeline.nope")
    assert store.read().serial == 6 and store.backups()[-1] == 5


# ---- S3: the object's metadata ------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with aws_test_env(), moto_server() as url:
        yield url


@pytest.fixture
def s3store(endpoint: str) -> S3Store:
    bucket = f"integrity-{os.getpid()}-{os.urandom(3).hex()}"
    client("s3", endpoint).create_bucket(Bucket=bucket)
    store = S3Store(bucket, "dev", prefix="state", region=REGION, endpoint_url=endpoint)
    s = State.new("dev")
    for i in range(3):
        s.resources["kfp_pipeline.churn"] = _res("churn", f"h{i}")
        store.write(s)
    return store


def _s3(store: S3Store):
    return client("s3", store.endpoint_url)


def _fresh(store: S3Store) -> S3Store:
    return S3Store(store.bucket, "dev", prefix="state", region=REGION, endpoint_url=store.endpoint_url)


def test_s3_versions_carry_lineage_and_serial_metadata(s3store: S3Store) -> None:
    head = _s3(s3store).head_object(Bucket=s3store.bucket, Key=s3store.key)
    state = _fresh(s3store).read()
    assert head["Metadata"] == {"specops-lineage": state.lineage, "specops-serial": "3"}
    backup = _s3(s3store).head_object(Bucket=s3store.bucket, Key=s3store.backup_key(2))
    assert backup["Metadata"]["specops-serial"] == "2"


def test_s3_serial_jump_against_metadata_is_refused(s3store: S3Store) -> None:
    doc = json.loads(_s3(s3store).get_object(Bucket=s3store.bucket, Key=s3store.key)["Body"].read())
    doc["serial"] = 1003
    meta = _s3(s3store).head_object(Bucket=s3store.bucket, Key=s3store.key)["Metadata"]
    _s3(s3store).put_object(Bucket=s3store.bucket, Key=s3store.key, Body=json.dumps(doc).encode(), Metadata=meta)
    with pytest.raises(StateError, match=r"serial 1003, but specops wrote .* serial 3 .*/dev.state.json.2.bak"):
        _fresh(s3store).read()


def test_s3_hand_upload_without_metadata_is_checked_against_the_backup(s3store: S3Store) -> None:
    body = _s3(s3store).get_object(Bucket=s3store.bucket, Key=s3store.key)["Body"].read()
    doc = json.loads(body)
    doc["lineage"] = "00000000-0000-4000-8000-000000000000"
    _s3(s3store).put_object(Bucket=s3store.bucket, Key=s3store.key, Body=json.dumps(doc).encode())
    with pytest.raises(StateError, match="is not the lineage of its newest backup"):
        _fresh(s3store).read()
    # The same bytes put back by hand (no metadata) follow the backup: accepted.
    _s3(s3store).put_object(Bucket=s3store.bucket, Key=s3store.key, Body=body)
    assert _fresh(s3store).read().serial == 3


def test_s3_deleted_state_with_backups_is_refused(s3store: S3Store) -> None:
    _s3(s3store).delete_object(Bucket=s3store.bucket, Key=s3store.key)
    with pytest.raises(StateError, match="missing but its backups are not"):
        _fresh(s3store).read()
    with pytest.raises(StateError):
        _fresh(s3store).write(State.new("dev"))
