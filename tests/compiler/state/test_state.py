"""Local state store: real files, real processes (subprocess + SIGKILL), no doubles.

The only injected fault is `os.replace` failing / the process being killed right after the
temp file is written, which is how a crash mid-write is simulated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from specops.specs.project import StateBackend
from specops.state import LocalStore, LockHeld, LockInfo, ResourceState, State, StateError, open_store
from specops.state import local as st

REPO = Path(__file__).resolve().parents[3]


def _res(name: str, h: str = "h1") -> ResourceState:
    addr = f"kfp_pipeline.{name}"
    return ResourceState(address=addr, type="kfp_pipeline", name=name, content_hash=h,
                         ids={"pipeline_id": "p-1"}, outputs={"version": "v1"},
                         attributes={"steps": ["a", "b"]}, depends_on=[])


def _store(tmp_path: Path, env: str = "dev") -> LocalStore:
    store = open_store(StateBackend(), env, tmp_path)
    assert isinstance(store, LocalStore)
    return store


def test_open_store_layout_and_round_trip(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.path == tmp_path / ".specops/state/dev.state.json"
    assert store.read() is None
    s = State.new("dev")
    s.resources["kfp_pipeline.churn"] = _res("churn")
    s.gates["quality"] = {"model": "churn", "version": "3", "passed": True, "metrics": {"auc": 0.9}, "source": "run"}
    store.write(s)
    assert s.serial == 1
    got = store.read()
    assert got == s
    raw = store.path.read_bytes()
    assert raw.endswith(b"}\n")
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)  # sorted keys
    assert doc["version"] == 1 and doc["serial"] == 1 and doc["env"] == "dev"
    # Identical state -> identical bytes.
    assert State.from_bytes(raw, "x").to_bytes() == raw


def test_serial_increases_and_backups_rotate(tmp_path: Path) -> None:
    store = _store(tmp_path)
    s = State.new("dev")
    for i in range(8):
        s.resources["kfp_pipeline.churn"] = _res("churn", h=f"h{i}")
        store.write(s)
        assert s.serial == i + 1
        assert store.read().serial == i + 1
    # Backups hold the previous versions; only the newest 5 are kept.
    assert store.backups() == [3, 4, 5, 6, 7]
    names = sorted(p.name for p in store.directory.iterdir())
    assert names == sorted([f"dev.state.json.{n}.bak" for n in (3, 4, 5, 6, 7)] + ["dev.state.json"])
    b = store.read_backup(7)
    assert b.serial == 7 and b.resources["kfp_pipeline.churn"].content_hash == "h6"


def test_lineage_and_stale_serial_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    s = State.new("dev")
    store.write(s)
    store.write(s)
    before = store.path.read_bytes()
    other = State.new("dev")  # another history
    other.serial = 5
    with pytest.raises(StateError, match="lineage"):
        store.write(other)
    old = State(serial=1, lineage=s.lineage, env="dev")
    with pytest.raises(StateError, match=r"changed since it was read \(serial 2 stored, 1 in hand\)"):
        store.write(old)
    with pytest.raises(StateError, match="env 'prod'"):
        store.write(State(lineage=s.lineage, env="prod", serial=2))
    assert store.path.read_bytes() == before


def test_corrupt_state_is_one_line_error_and_nothing_is_overwritten(tmp_path: Path) -> None:
    store = _store(tmp_path)
    s = State.new("dev")
    store.write(s)
    store.write(s)  # serial 2, backup of serial 1
    good = store.path.read_bytes()
    cases = {
        good[: len(good) // 2]: "truncated",
        b"": "empty",
        b"\xff\xfe{}": "not UTF-8",
        b'{"version": 1,, }': "not valid JSON",
        b"[1, 2]\n": "top level is list",
        good.replace(b'"version": 1', b'"version": 9'): "schema version 9 is not supported",
        good.replace(b'"serial": 2', b'"serial": "2"'): "'serial'",
    }
    for data, what in cases.items():
        store.path.write_bytes(data)
        with pytest.raises(StateError) as ei:
            store.read()
        msg = str(ei.value)
        assert "\n" not in msg and what in msg, msg
        assert str(store.path) in msg
        assert f"newest backup to restore from: {store.backup_path(1)} (serial 1)" in msg
        # A write refuses too, and leaves the corrupt file (and backups) exactly as they were.
        with pytest.raises(StateError):
            store.write(s)
        assert store.path.read_bytes() == data
        assert store.backups() == [0, 1]  # the empty start of the history, then serial 1


def test_malformed_resource_named() -> None:
    doc = State(env="dev").to_dict()
    doc["resources"] = {"kfp_pipeline.a": {"address": "kfp_pipeline.a", "type": "kfp_pipeline", "name": "a"}}
    with pytest.raises(StateError, match=r"resources\['kfp_pipeline.a'\].content_hash is missing"):
        State.from_bytes(json.dumps(doc).encode(), "f.json")


def test_crash_mid_write_in_process_leaves_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    s = State.new("dev")
    s.resources["kfp_pipeline.churn"] = _res("churn", "before")
    store.write(s)
    before = store.path.read_bytes()

    def boom(src: str, dst: Path) -> None:
        assert Path(src).read_bytes()  # the temp file was fully written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st, "_replace", boom)
    s.resources["kfp_pipeline.churn"] = _res("churn", "after")
    with pytest.raises(StateError, match="the previous state is intact"):
        store.write(s)
    assert store.path.read_bytes() == before
    assert s.serial == 1  # not bumped: nothing was stored
    assert not [p for p in store.directory.iterdir() if p.name.endswith(".tmp")]


def test_kill_9_mid_write_leaves_previous_state(tmp_path: Path) -> None:
    """A real process is SIGKILLed between writing the temp file and the rename."""
    store = _store(tmp_path)
    s = State.new("dev")
    s.resources["kfp_pipeline.churn"] = _res("churn", "before")
    store.write(s)
    before = store.path.read_bytes()
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from specops.state import local as st
        def die(src, dst):
            os.kill(os.getpid(), signal.SIGKILL)
        st._replace = die
        store = st.LocalStore(Path({str(store.directory)!r}), "dev")
        s = store.read()
        s.resources["kfp_pipeline.churn"].content_hash = "after"
        store.write(s)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert store.path.read_bytes() == before
    assert store.read().resources["kfp_pipeline.churn"].content_hash == "before"
    # The orphaned temp file does not get in the way of the next write.
    s = store.read()
    s.resources["kfp_pipeline.churn"].content_hash = "next"
    store.write(s)
    assert store.read().resources["kfp_pipeline.churn"].content_hash == "next"


def test_lock_in_process(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.lock("apply") as info:
        assert isinstance(info, LockInfo)
        held = json.loads(store.lock_path.read_text())
        assert held["id"] == info.id and held["pid"] == os.getpid() and held["operation"] == "apply"
        assert held["owner"].endswith("@" + held["host"]) and held["created"].endswith("Z")
        with pytest.raises(LockHeld) as ei:
            with _store(tmp_path).lock("plan"):
                pass
        assert ei.value.info.id == info.id and ei.value.stale is None
        assert f"state for env 'dev' is locked by {info.owner} (pid {os.getpid()}, apply" in str(ei.value)
        # Writing while holding the lock (even through another store object) is allowed.
        _store(tmp_path).write(State.new("dev"))
    assert not store.lock_path.exists()
    with store.lock("apply"):
        pass


def test_write_refused_while_another_holds_the_lock(tmp_path: Path) -> None:
    store = _store(tmp_path)
    other = LockInfo.new("apply")
    other.id = "someone-elses"
    store.directory.mkdir(parents=True)
    store.lock_path.write_bytes(other.to_bytes())
    with pytest.raises(LockHeld, match="someone-elses"):
        store.write(State.new("dev"))
    assert not store.path.exists()


def test_force_unlock_only_matching_id(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(StateError, match="not locked"):
        store.force_unlock("nope")
    with store.lock("apply") as info:
        with pytest.raises(StateError, match=f"does not match .*lock id {info.id}"):
            store.force_unlock("wrong-id")
        assert store.lock_path.exists()
        store.force_unlock(info.id)
        assert not store.lock_path.exists()
        with store.lock("plan") as second:  # someone else takes it meanwhile
            pass
        assert second.id != info.id
    # Leaving the first context did not remove a lock that is no longer its own.
    assert not store.lock_path.exists()


def test_release_keeps_someone_elses_lock(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.lock("apply") as info:
        store.force_unlock(info.id)
        other = LockInfo.new("apply")
        store.lock_path.write_bytes(other.to_bytes())
    assert json.loads(store.lock_path.read_text())["id"] == other.id


def test_stale_by_age(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old = LockInfo.new("apply")
    old.created = "2020-01-01T00:00:00Z"
    store.directory.mkdir(parents=True)
    store.lock_path.write_bytes(old.to_bytes())
    with pytest.raises(LockHeld) as ei:
        with store.lock("apply"):
            pass
    assert ei.value.stale and "more than 3600s" in str(ei.value)
    assert f"`specops force-unlock {old.id}`" in str(ei.value)
    with pytest.raises(LockHeld) as ei:  # a fresh lock by a live pid is not stale
        with store.lock("apply", stale_after=10 ** 12):
            pass
    assert ei.value.stale is None


def test_unreadable_lock_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.directory.mkdir(parents=True)
    store.lock_path.write_bytes(b'{"id": ')
    with pytest.raises(StateError, match="unreadable"):
        with store.lock("apply"):
            pass


_HOLDER = """
import sys, time
from pathlib import Path
from specops.state import LocalStore
store = LocalStore(Path(sys.argv[1]), "dev")
with store.lock("apply") as info:
    print(info.id, flush=True)
    time.sleep(120)
"""


def test_lock_across_processes_and_kill_9_is_stale(tmp_path: Path) -> None:
    store = _store(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(store.directory)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock_id = proc.stdout.readline().strip()
        assert lock_id, proc.stderr.read()
        with pytest.raises(LockHeld) as ei:
            with store.lock("plan"):
                pass
        msg = str(ei.value)
        assert f"(pid {proc.pid}, apply" in msg and f"lock id {lock_id}" in msg
        assert "stale" not in msg
        proc.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert store.lock_path.exists()
    # The holder died on this host: the next lock() takes over, and says whose lock it was.
    with store.lock("plan") as info:
        assert info.id != lock_id
        assert store.took_over is not None and store.took_over.id == lock_id
    assert not store.lock_path.exists()


_RACER = """
import sys, time
from pathlib import Path
from specops.state import LocalStore, LockHeld
store = LocalStore(Path(sys.argv[1]), "dev")
while time.time() < float(sys.argv[2]):
    pass
try:
    with store.lock("apply"):
        print("won", flush=True)
        time.sleep(1.5)
except LockHeld as e:
    print("lost", flush=True)
"""


def test_lock_race_between_processes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(store.directory), str(start)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost", "lost", "lost", "won"]
    assert not store.lock_path.exists()


def test_env_name_checked(tmp_path: Path) -> None:
    for bad in ("../x", "a/b", "", ".."):
        with pytest.raises(StateError, match="cannot name a state file"):
            open_store(StateBackend(), bad, tmp_path)


def test_open_store_s3_needs_bucket(tmp_path: Path) -> None:
    # The spec model already refuses this (tests/compiler/frontend/bad_inputs/project_s3_state_without_bucket.yaml);
    # open_store still guards against a hand-built settings object.
    with pytest.raises(ValueError, match="needs `bucket`"):
        StateBackend(backend="s3")
    with pytest.raises(StateError, match="state.bucket is not set"):
        open_store(StateBackend.model_construct(backend="s3", path=".specops/state", bucket=None,
                                                prefix=None, region=None), "dev", tmp_path)


def test_state_module_does_not_import_boto3() -> None:
    code = "import sys, specops.state; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False", out.stderr


def test_lock_timeout_waits_for_the_holder_and_zero_refuses_at_once(tmp_path):
    """One lock loop for every store (state.base.hold_lock): with a timeout a second locker
    waits until the holder releases; without one it is refused naming the holder."""
    import threading

    store, other = LocalStore(tmp_path, "dev"), LocalStore(tmp_path, "dev")
    held, release = threading.Event(), threading.Event()

    def holder():
        with store.lock("apply"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(10)
    with pytest.raises(LockHeld, match="locked by .* apply"):
        with other.lock("plan", timeout=0):
            pass
    threading.Timer(0.3, release.set).start()
    with other.lock("plan", timeout=30) as info:  # waits for the holder, then holds it
        assert other.current_lock().id == info.id
    t.join()
    assert other.current_lock() is None
