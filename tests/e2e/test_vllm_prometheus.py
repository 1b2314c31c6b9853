"""A real Prometheus (Debian's `prometheus`) scrapes the CPU vLLM server's /metrics (the one
session server of tests/conftest.py), evaluates the generated time-to-first-token alerting rule on
real samples, and runs every query of the generated Grafana dashboard without error. The metric
names of the pinned vLLM 0.32.0 list that the rules and dashboard use are all on the live server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from specops.backends import prometheus

PROM = shutil.which("prometheus")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _complete(base_url: str, model: str) -> None:
    body = json.dumps({"model": model, "prompt": "question: what is two plus two? answer:", "max_tokens": 8})
    req = urllib.request.Request(f"{base_url}/v1/completions", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200


def _wait(pred, what: str, timeout: float = 90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
        except (OSError, KeyError, IndexError):  # not listening yet, no target or rule yet
            got = None
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.vllm_e2e
def test_prometheus_evaluates_the_ttft_rule_on_the_live_server(vllm_server, tmp_path: Path) -> None:
    assert PROM, "prometheus is missing: `apt-get install prometheus` (.ci/run installs it)"
    # An objective of 1 ms: a CPU server's first token takes tens of ms, so the rule must fire.
    slo = {"ttftP95Ms": 1.0, "kvCacheUsage": 0.99, "errorRate": 0.5, "window": "1m", "for": "1s"}
    groups = prometheus.rule_groups("e2e", "test", "tiny", vllm_server.model, slo, "0.32.0")
    (tmp_path / "alerts.rules.yaml").write_bytes(prometheus.rules_file(groups))
    target = urllib.parse.urlsplit(vllm_server.base_url).netloc
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.rules.yaml"],
        "scrape_configs": [{"job_name": "vllm", "static_configs": [{"targets": [target]}]}]}))
    port = _port()
    api = f"http://127.0.0.1:{port}/api/v1"
    proc = subprocess.Popen([PROM, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))
    try:
        _wait(lambda: _get(f"{api}/targets")["data"]["activeTargets"][0]["health"] == "up", "the scrape")
        for _ in range(6):
            _complete(vllm_server.base_url, vllm_server.model)
            time.sleep(1)

        def ttft_rule() -> dict | None:
            for g in _get(f"{api}/rules")["data"]["groups"]:
                for r in g["rules"]:
                    if r["name"] == "VllmTimeToFirstTokenP95High" and r.get("alerts"):
                        return r
            return None

        rule = _wait(ttft_rule, "the TTFT alert")
        assert rule["health"] == "ok" and not rule.get("lastError")
        (alert,) = rule["alerts"]
        assert alert["state"] in ("pending", "firing") and float(alert["value"]) > 0.001
        assert alert["labels"]["serving_target"] == "tiny"
        # The other rules evaluate without error (their objectives hold: no alerts).
        for g in _get(f"{api}/rules")["data"]["groups"]:
            for r in g["rules"]:
                assert r["health"] == "ok", r
        # Every dashboard query runs.
        dash = prometheus.dashboard("e2e", "test", "tiny", vllm_server.model, slo, "0.32.0")
        for q in prometheus.dashboard_queries(dash):
            doc = _get(f"{api}/query?" + urllib.parse.urlencode({"query": q}))
            assert doc["status"] == "success", (q, doc)
        # The names the rules and dashboard read are on the live server.
        live = set(_get(f"{api}/label/__name__/values")["data"])
        used = {n for n in live if n.startswith("vllm:")}
        _, metrics = prometheus.metric_list("0.32.0")
        for name in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
                     "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds"):
            assert f"{name}_bucket" in used and metrics[name] == "histogram"
        assert "vllm:kv_cache_usage_perc" in used and "vllm:request_success_total" in used
        assert "vllm:num_requests_running" in used and "vllm:prompt_tokens_total" in used
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
