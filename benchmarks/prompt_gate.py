"""Benchmark: a prompt gate over 200 rows against the CPU vLLM server, at concurrency 4.

    python benchmarks/prompt_gate.py [--rows 200] [--concurrency 4] [--model DIR]

Trains tests/fixtures/qa_model.py's tiny Llama (or uses --model), starts vLLM's CPU build
from a specops-compiled serve config (tests/fixtures/vllm_server.py), checks a 200-row
dataset, then times the gate's `evaluate` step (task prompt: render every row in the sandbox
worker, generate over HTTP with COUNT requests in flight, judge with four assertions, write
rows.json) and the gate step. Reports rows per second and the overhead: the evaluate step's
wall time minus the summed request latencies divided by the concurrency, over its wall time
(the share of the wall time not spent waiting on the server; target <= 5 %).
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.fixtures when run as a script

from specops.runtime import generate, run_step  # noqa: E402
from tests.fixtures.qa_model import build_qa_model, write_qa_jsonl  # noqa: E402
from tests.fixtures.vllm_server import serve  # noqa: E402

ASSERTIONS = [{"type": "icontains", "value": "{{ answer }}"},
              {"type": "rouge-n", "value": "{{ answer }}", "threshold": 0.5, "metric": "rouge1"},
              {"type": "levenshtein", "value": " {{ answer }}", "threshold": 5},
              {"type": "not-contains", "value": "refund guaranteed"}]


SPANS: list[tuple[float, float]] = []  # (start, end) of every request, perf_counter seconds
_call = generate.HttpGenerator.__call__


def _timed(self, req):  # records when each request was in flight, for the breakdown below
    t0 = time.perf_counter()
    try:
        return _call(self, req)
    finally:
        SPANS.append((t0, time.perf_counter()))


generate.HttpGenerator.__call__ = _timed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--model", type=Path, default=None, help="a qa_model folder (default: train one)")
    ap.add_argument("--runs", type=int, default=3, help="timed gate evaluations (the best is reported too)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="specops-bench-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        model = a.model or build_qa_model(work / "tiny-llama")
        print(f"model ready in {time.monotonic() - t0:.1f} s")
        repo = work / "repo"
        write_qa_jsonl(repo / "data" / "qa.jsonl", a.rows)
        ds = {"name": "qa", "uri": "file://data/qa.jsonl", "format": "jsonl",
              "schema": [{"name": c, "type": "string", "nullable": False} for c in ("question", "answer", "topic")],
              "splits": {"test": 1.0}, "checks": [{"type": "rowCount", "min": a.rows}]}
        run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(work / "data"), repo_root=str(repo))
        with serve(model, work / "vllm", max_num_seqs=a.concurrency) as server:
            print(f"vLLM ready in {server.ready_s:.1f} s at {server.base_url}")
            warm = json.dumps({"model": server.model, "prompt": "Question: hi\nAnswer:", "max_tokens": 8}).encode()
            for _ in range(3):  # the first requests pay for lazy initialisation in the server
                urllib.request.urlopen(urllib.request.Request(f"{server.base_url}/v1/completions", data=warm,
                                                              headers={"Content-Type": "application/json"}),
                                       timeout=60).read()
            params = {"task": "prompt", "gate": "bench", "assertions": ASSERTIONS,
                      "prompt": {"name": "qa", "version": 1, "template": "Question: {{ question }}\nAnswer:",
                                 "parameters": {"temperature": 0, "max_tokens": 24}},
                      "endpoint": {"url": f"{server.base_url}/v1", "model": server.model,
                                   "concurrency": a.concurrency}}
            results = []
            for k in range(a.runs):
                SPANS.clear()
                t0 = time.perf_counter()
                res = run_step("evaluate", params, inputs={"data": str(work / "data")},
                               output_dir=str(work / f"eval{k}"), repo_root=str(repo))
                t_end = time.perf_counter()
                wall = t_end - t0
                first = min(s0 for s0, _ in SPANS) - t0
                last = t_end - max(e for _, e in SPANS)
                t1 = time.perf_counter()
                run_step("gate", {"gate": "bench", "metrics": [{"metric": "pass_rate", "raw": ">= 0.9"}]},
                         inputs={"metrics": str(work / f"eval{k}")}, output_dir=str(work / f"gate{k}"), repo_root=".")
                gate_s = time.perf_counter() - t1
                rows = json.loads((work / f"eval{k}" / "rows.json").read_text())["rows"]
                lat = [run["latency_ms"] / 1000.0 for r in rows for run in r["runs"]]
                busy = sum(lat) / a.concurrency
                overhead = (wall - busy) / wall
                results.append(overhead)
                print(f"run {k + 1}: rows {res['rows']}, pass_rate {res['metrics']['pass_rate']}, requests {len(lat)}; "
                      f"evaluate wall {wall:.2f} s -> {res['rows'] / wall:.1f} rows/s; gate step {gate_s * 1000:.0f} ms; "
                      f"summed request latency {sum(lat):.2f} s (/ {a.concurrency} = {busy:.2f} s), "
                      f"p50 {sorted(lat)[len(lat) // 2] * 1000:.0f} ms; "
                      f"overhead (wall - summed latency / concurrency) / wall = {overhead * 100:.1f} %; "
                      f"before the first request {first * 1000:.0f} ms, after the last {last * 1000:.0f} ms")
        print(f"best overhead {min(results) * 100:.1f} %, median {sorted(results)[len(results) // 2] * 100:.1f} % "
              f"(target <= 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
