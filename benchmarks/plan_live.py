"""Benchmark: refresh (provider read()) of 200 live SageMaker pipelines, sequential vs parallel.

    python benchmarks/plan_live.py [--count 200] [--workers 16]

Starts moto's server in its own process on 127.0.0.1 (so the server does not share this
process's GIL with the client threads, as a remote API would not), creates COUNT pipelines
through the sagemaker_pipeline provider's apply() (tags included), then times a full
refresh — read() of every resource: describe_pipeline + list_tags — once sequentially and
once with a bounded ThreadPoolExecutor. Target (PRODUCT.md): parallel refresh <= 3 s.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.moto_server / tests.fixtures when run as a script


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"moto server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="add this much simulated network round trip to every refresh request "
                         "(moto answers in ~5 ms; AWS from a CI runner is often 20-80 ms)")
    args = ap.parse_args()

    from specops.backends import sagemaker as sm
    from specops.backends.provider import Desired, content_hash, make_provider
    from tests.fixtures.ir_samples import AWS, churn_pipeline
    from tests.moto_server import AWS_TEST_ENV, free_port

    os.environ.update(AWS_TEST_ENV)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(url, server)
        prov = make_provider("sagemaker_pipeline", env="prod", target=AWS, root=REPO,
                             options={"endpoint_url": url, "upload_params": False})
        base = churn_pipeline(AWS, "prod")
        desired: list[Desired] = []
        for i in range(args.count):
            p = dataclasses.replace(base, name=f"model-{i:03d}")
            files = {f"prod/sagemaker/{p.name}/{k}": v for k, v in sm.emit(p).items()}
            desired.append(Desired(
                address=f"sagemaker_pipeline.{p.name}", type="sagemaker_pipeline", name=p.name, env="prod",
                content_hash=content_hash(files), files=files,
                attributes=json.loads(files[f"prod/sagemaker/{p.name}/definition.json"]), depends_on=(),
                target=AWS, spec=f"Model/{p.name}"))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(lambda d: prov.apply(d, None), desired))
        created = time.perf_counter() - t0

        prov.read(desired[0], None)  # warm the client (credentials, endpoint resolution)
        if args.latency_ms:
            # time.sleep releases the GIL, as waiting on a real socket would.
            prov.client("sagemaker").meta.events.register(
                "before-send.sagemaker.*", lambda **_: time.sleep(args.latency_ms / 1000))
        # CPU of this process only (the client: the moto server runs in its own process, as a
        # remote API would), per resource: issue 18's target is <= 5 ms.
        t0, c0 = time.perf_counter(), time.process_time()
        seq = [prov.read(d, None) for d in desired]
        sequential, seq_cpu = time.perf_counter() - t0, time.process_time() - c0

        t0, c0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            par = list(pool.map(lambda d: prov.read(d, None), desired))
        parallel, par_cpu = time.perf_counter() - t0, time.process_time() - c0

        # The whole engine: `plan` over the same 200 resources recorded in state (refresh in
        # parallel inside compute_plan, then per-resource comparison and field diffs).
        from specops.ops.plan import compute_plan
        from specops.specs.project import Policy
        from specops.state import ResourceState, State

        state = State.new("prod")
        for d, live in zip(desired, par):
            state.resources[d.address] = ResourceState(
                address=d.address, type=d.type, name=d.name, content_hash=d.content_hash,
                ids=dict(live.ids), outputs={}, attributes=d.attributes, depends_on=[])
        t0, c0 = time.perf_counter(), time.process_time()
        plan = compute_plan(desired, state, env="prod", target="aws", policy=Policy(),
                            provider_for=lambda _t: prov, refresh_live=True)
        engine, engine_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert not plan.has_changes, [c.address for c in plan.changes if c.action != "no-op"][:3]

        ok = sum(1 for d, live in zip(desired, par) if live.exists and live.content_hash == d.content_hash)
        assert [x.content_hash for x in seq] == [x.content_hash for x in par]
        print(f"live resources:         {args.count} SageMaker pipelines on moto (separate process, 127.0.0.1)"
              + (f", +{args.latency_ms:g} ms simulated latency per request" if args.latency_ms else ""))
        print(f"create (apply, {args.workers:>2} thr): {created:6.2f} s")
        per = 1000 / args.count
        print(f"load average (1 min):   {os.getloadavg()[0]:.2f}")
        print(f"refresh sequential:     {sequential:6.2f} s  ({sequential * per:.1f} ms/resource; "
              f"client CPU {seq_cpu * per:.1f} ms/resource)")
        print(f"refresh parallel ({args.workers:>2}):  {parallel:6.2f} s  (target <= 3 s: "
              f"{'met' if parallel <= 3.0 else 'MISSED'}; client CPU {par_cpu * per:.1f} ms/resource)")
        print(f"plan (engine, refresh): {engine:6.2f} s  (no changes: {not plan.has_changes}; client CPU "
              f"{engine_cpu * per:.1f} ms/resource, target <= 5)")
        print(f"in sync with desired:   {ok}/{args.count}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
