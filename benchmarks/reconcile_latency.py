"""How long `specops reconcile --interval 5s` takes to apply a pushed commit (figures, not
assertions; issue 14: "within one interval plus the apply's own time").

    python benchmarks/reconcile_latency.py [--pushes 3] [--interval 5s]

Against a bare local git remote and SageMaker + S3 on moto (127.0.0.1), the loop (a real
process) watches the churn specs with three environments. Each push changes one gate threshold
(one pipeline update per environment). Reported per push:
  latency   push -> the sync that applied it logged its end         bound: interval + sync time
  sync      that sync's own duration (fetch, compile, plan and apply of every environment)
  wait      latency - sync: time spent waiting for the next interval  bound: <= interval
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.compiler.reconcile.loop_process import LoopProcess, loop_env  # noqa: E402
from tests.gitops_repo import commit_threshold, gitops_aws, make_origin  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=3)
    ap.add_argument("--interval", default="5s")
    args = ap.parse_args()
    interval = float(args.interval.rstrip("s"))
    with tempfile.TemporaryDirectory() as tmp, gitops_aws():
        tmp_path = Path(tmp)
        origin, work = make_origin(tmp_path)
        proc = LoopProcess(["--repo", str(origin), "--interval", args.interval, "--listen", "127.0.0.1:0",
                            "--workdir", str(tmp_path / "wd")], loop_env(), tmp_path)
        try:
            proc.wait_for(lambda x: x.get("event") == "sync")
            for i in range(args.pushes):
                time.sleep(interval * (i + 1) / (args.pushes + 1))  # pushes land at different points of the interval
                n = len(proc.lines)
                t0 = time.monotonic()
                rev = commit_threshold(work, f"0.{76 + i}")
                done = proc.wait_for(lambda x: x.get("event") == "sync" and x.get("revision") == rev, after=n)
                latency = time.monotonic() - t0
                sync = float(done["duration_s"])
                print(f"push {i + 1}: latency {latency:.2f} s, sync {sync:.2f} s, wait {latency - sync:.2f} s "
                      f"(bound: interval {interval:g} s + sync); envs {done['envs']}")
        finally:
            proc.stop()


if __name__ == "__main__":
    main()
