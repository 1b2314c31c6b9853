"""Serving SLOs on a SageMaker endpoint compile to CloudWatch alarms (put_metric_alarm request
bodies) that round-trip through moto's CloudWatch on 127.0.0.1; the SLOs an endpoint publishes
no metric for are reported at the spec's line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze
from tests.moto_server import aws_test_env, client, moto_server

ROOT = Path(__file__).resolve().parents[2]


def _prod_build(tmp_path: Path):
    repo = tmp_path / "sa"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    p = repo / "monitors" / "support-live.yaml"
    doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    doc["environments"] = ["staging", "prod"]
    p.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors
    return compile_repo(resolved)


def test_alarms_round_trip_through_moto(tmp_path: Path) -> None:
    build = _prod_build(tmp_path)
    files = build.files()
    assert "prod/monitors/support-live/alerts.rules.yaml" not in files  # no Prometheus on SageMaker
    reqs = json.loads(files["prod/monitors/support-live/cloudwatch-alarms.json"])
    assert [r["AlarmName"] for r in reqs] == ["specops-support-live-prod-e2e-p95", "specops-support-live-prod-error-rate"]
    warn = [d for d in build.diagnostics.sorted() if d.file == "monitors/support-live.yaml"]
    assert any("ttftP95Ms, itlP95Ms, kvCacheUsage, queueTimeP95Ms" in d.message for d in warn)
    endpoint = json.loads(files["prod/serving/support-llm/endpoint.json"])["CreateEndpoint"]["EndpointName"]
    with aws_test_env(), moto_server() as url:
        cw = client("cloudwatch", url)
        for r in reqs:
            cw.put_metric_alarm(**r)
        got = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    e2e = got["specops-support-live-prod-e2e-p95"]
    assert e2e["MetricName"] == "ModelLatency" and e2e["ExtendedStatistic"] == "p95"
    assert e2e["Threshold"] == 8_000_000.0 and e2e["Period"] == 300 and e2e["EvaluationPeriods"] == 2
    assert {d["Name"]: d["Value"] for d in e2e["Dimensions"]} == {"EndpointName": endpoint, "VariantName": "AllTraffic"}
    rate = got["specops-support-live-prod-error-rate"]
    assert rate["Threshold"] == 0.01 and [m["Id"] for m in rate["Metrics"]] == ["errors", "invocations", "rate"]
