"""S3 state store against a real moto S3 server on 127.0.0.1 (boto3 over HTTP, no doubles).

moto 5.2.5 in server mode honours `If-None-Match: *` and `If-Match` on PutObject and
`If-Match` on DeleteObject, which is what the store's locking and stale-write checks rely on.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from typing import Iterator

import pytest

from specops.specs.project import StateBackend
from specops.state import LockHeld, LockInfo, ResourceState, State, StateError, open_store
from specops.state.s3 import S3Store
from tests.moto_server import REGION, aws_test_env, client, moto_server

_n = itertools.count()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with aws_test_env(), moto_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"state-{os.getpid()}-{next(_n)}"
    client("s3", endpoint).create_bucket(Bucket=name)
    return name


def _store(endpoint: str, bucket: str, env: str = "dev", prefix: str | None = "specops/state") -> S3Store:
    return S3Store(bucket, env, prefix=prefix, region=REGION, endpoint_url=endpoint)


def _keys(endpoint: str, bucket: str) -> list[str]:
    resp = client("s3", endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def _res(h: str) -> ResourceState:
    return ResourceState(address="sagemaker_pipeline.churn", type="sagemaker_pipeline", name="churn",
                         content_hash=h, ids={"arn": "arn:aws:sagemaker:us-east-1:123:pipeline/churn"})


def test_round_trip_via_open_store_and_aws_endpoint_url(endpoint: str, bucket: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_store(StateBackend(backend="s3", bucket=bucket, prefix="/team/state/", region=REGION),
                       "dev", root=None)  # type: ignore[arg-type]
    assert isinstance(store, S3Store) and store.where == f"s3://{bucket}/team/state/dev.state.json"
    assert store.read() is None
    s = State.new("dev")
    s.resources["sagemaker_pipeline.churn"] = _res("h0")
    s.gates["quality"] = {"model": "churn", "version": "1", "passed": True, "metrics": {"f1": 0.8}, "source": "run"}
    store.write(s)
    assert s.serial == 1
    fresh = open_store(StateBackend(backend="s3", bucket=bucket, prefix="team/state", region=REGION), "dev", None)  # type: ignore[arg-type]
    assert fresh.read() == s
    body = client("s3", endpoint).get_object(Bucket=bucket, Key="team/state/dev.state.json")["Body"].read()
    assert body == s.to_bytes()



@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2"])
def test_requests_are_signed_for_the_states_region(endpoint: str, bucket: str, region: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`state.region` is the region the store's requests are signed for (SigV4's credential
    scope, which S3 checks against the bucket's region), whatever AWS_REGION says. Seen on the
    signed requests themselves, through botocore's own `before-send` event."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_store(StateBackend(backend="s3", bucket=bucket, region=region), "dev", root=None)  # type: ignore[arg-type]
    signed: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda request, **_: signed.append(
        str(request.headers["Authorization"])))
    s = State.new("dev")
    store.write(s)
    assert store.read() == s
    assert signed and all(f"/{region}/s3/aws4_request" in a for a in signed), signed

def test_backups_rotate(endpoint: str, bucket: str) -> None:
    store = _store(endpoint, bucket)
    s = State.new("dev")
    for i in range(8):
        s.resources["sagemaker_pipeline.churn"] = _res(f"h{i}")
        store.write(s)
        assert s.serial == i + 1
    assert store.backups() == [3, 4, 5, 6, 7]
    assert _keys(endpoint, bucket) == sorted(
        ["specops/state/dev.state.json"] + [f"specops/state/dev.state.json.{n}.bak" for n in (3, 4, 5, 6, 7)])
    assert store.read_backup(7).resources["sagemaker_pipeline.churn"].content_hash == "h6"
    assert _store(endpoint, bucket).read().serial == 8


def test_stale_etag_write_refused(endpoint: str, bucket: str) -> None:
    a, b = _store(endpoint, bucket), _store(endpoint, bucket)
    s = State.new("dev")
    a.write(s)
    sa, sb = a.read(), b.read()
    sa.resources["sagemaker_pipeline.churn"] = _res("from-a")
    a.write(sa)
    sb.resources["sagemaker_pipeline.churn"] = _res("from-b")
    with pytest.raises(StateError, match="changed since it was read"):
        b.write(sb)
    assert _store(endpoint, bucket).read().resources["sagemaker_pipeline.churn"].content_hash == "from-a"
    # After reading again, b can write on top.
    sb = b.read()
    sb.gates["g"] = {"passed": False}
    b.write(sb)
    assert _store(endpoint, bucket).read().serial == 3


def test_first_write_race_refused(endpoint: str, bucket: str) -> None:
    """Both see no state; the second creation is refused by If-None-Match."""
    a, b = _store(endpoint, bucket), _store(endpoint, bucket)
    assert a.read() is None and b.read() is None
    a.write(State.new("dev"))
    with pytest.raises(StateError, match="changed since it was read"):
        b.write(State.new("dev"))


def test_lineage_refused(endpoint: str, bucket: str) -> None:
    store = _store(endpoint, bucket)
    store.write(State.new("dev"))
    other = State.new("dev")
    other.serial = 4
    with pytest.raises(StateError, match="lineage"):
        store.write(other)


def test_corrupt_state_names_object_and_backup(endpoint: str, bucket: str) -> None:
    store = _store(endpoint, bucket)
    s = State.new("dev")
    store.write(s)
    store.write(s)
    good = store.read().to_bytes()
    client("s3", endpoint).put_object(Bucket=bucket, Key=store.key, Body=good[:40])
    fresh = _store(endpoint, bucket)
    with pytest.raises(StateError) as ei:
        fresh.read()
    msg = str(ei.value)
    assert msg.startswith(f"s3://{bucket}/specops/state/dev.state.json: state file is truncated")
    assert f"newest backup to restore from: s3://{bucket}/specops/state/dev.state.json.1.bak (serial 1)" in msg
    with pytest.raises(StateError):
        fresh.write(s)
    body = client("s3", endpoint).get_object(Bucket=bucket, Key=store.key)["Body"].read()
    assert body == good[:40]


def test_lock_race_8_threads_exactly_one_wins(endpoint: str, bucket: str) -> None:
    n = 8
    stores = [_store(endpoint, bucket) for _ in range(n)]
    for st in stores:
        st.client  # build clients before the race
    start, attempted = threading.Barrier(n), threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            with stores[i].lock("apply") as info:
                results[i] = info
                attempted.wait(timeout=60)  # hold it until everyone has tried
        except LockHeld as e:
            results[i] = e
            attempted.wait(timeout=60)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    winners = [r for r in results if isinstance(r, LockInfo)]
    losers = [r for r in results if isinstance(r, LockHeld)]
    assert len(winners) == 1 and len(losers) == n - 1, results
    assert all(e.info.id == winners[0].id and winners[0].id in str(e) for e in losers)
    assert _store(endpoint, bucket).current_lock() is None  # released on exit


def test_lock_blocks_other_writers_and_force_unlock(endpoint: str, bucket: str) -> None:
    a, b = _store(endpoint, bucket), _store(endpoint, bucket)
    with pytest.raises(StateError, match="not locked"):
        b.force_unlock("x")
    with a.lock("apply") as info:
        a.write(State.new("dev"))  # the holder may write
        with pytest.raises(LockHeld, match=f"lock id {info.id}"):
            with b.lock("plan"):
                pass
        with pytest.raises(StateError, match="does not match"):
            b.force_unlock("wrong")
        assert b.current_lock().id == info.id
        b.force_unlock(info.id)
        assert b.current_lock() is None
        with b.lock("plan") as second:
            pass
        assert second.id != info.id
    assert a.current_lock() is None


def test_write_refused_while_another_process_holds_the_lock(endpoint: str, bucket: str) -> None:
    store = _store(endpoint, bucket)
    store.write(State.new("dev"))
    foreign = LockInfo.new("apply")  # as another process would have written it
    client("s3", endpoint).put_object(Bucket=bucket, Key=store.lock_key, Body=foreign.to_bytes())
    s = store.read()
    with pytest.raises(LockHeld, match=foreign.id):
        store.write(s)
    assert store.read().serial == 1


def test_release_keeps_someone_elses_lock(endpoint: str, bucket: str) -> None:
    a = _store(endpoint, bucket)
    other = LockInfo.new("apply")
    with a.lock("apply") as info:
        a.force_unlock(info.id)
        client("s3", endpoint).put_object(Bucket=bucket, Key=a.lock_key, Body=other.to_bytes())
    assert a.current_lock().id == other.id


def test_stale_lock_dead_pid(endpoint: str, bucket: str) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = LockInfo.new("apply")
    dead.pid = int(proc.stdout)
    store = _store(endpoint, bucket)
    client("s3", endpoint).put_object(Bucket=bucket, Key=store.lock_key, Body=dead.to_bytes())
    with pytest.raises(LockHeld) as ei:
        with store.lock("apply"):
            pass
    assert f"pid {dead.pid} is not running on this host" in str(ei.value)
    assert f"specops force-unlock {dead.id}" in str(ei.value)
    # Another host's pid cannot be checked from here: only age makes it stale.
    remote = LockInfo.new("apply")
    remote.host, remote.pid = "some-other-host", dead.pid
    client("s3", endpoint).put_object(Bucket=bucket, Key=store.lock_key, Body=remote.to_bytes())
    with pytest.raises(LockHeld) as ei:
        with store.lock("apply"):
            pass
    assert ei.value.stale is None


def test_missing_bucket_is_one_line(endpoint: str) -> None:
    store = _store(endpoint, "no-such-bucket-here")
    with pytest.raises(StateError, match="bucket does not exist"):
        store.read()
    with pytest.raises(StateError, match="bucket does not exist"):
        with store.lock("apply"):
            pass
