"""Alerting rules and dashboards of serving SLOs, checked by Prometheus's own promtool: every
generated rule file passes `promtool check rules`, and `promtool test rules` fires each alert on
synthetic vLLM series that break its objective and stays silent on series that keep it. The
series use the metric names of the pinned vLLM 0.32.0 list (backends/vllm_metrics), which the
vLLM end-to-end test checks against a live server's /metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from specops.backends import prometheus
from specops.build.compile import compile_repo
from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
SLO = {"ttftP95Ms": 500.0, "itlP95Ms": 50.0, "e2eP95Ms": 8000.0, "errorRate": 0.01, "kvCacheUsage": 0.9,
       "queueTimeP95Ms": 200.0, "window": "5m", "for": "10m"}
BUCKETS = ("0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "20", "+Inf")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: `apt-get install prometheus` (.ci/run installs it)"
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def compiled_rule_files(tmp_path: Path) -> dict[str, bytes]:
    resolved = analyze(ROOT / "examples" / "support-assistant")
    files = compile_repo(resolved).files()
    return {p: d for p, d in files.items() if p.endswith("alerts.rules.yaml")}


def _histogram(metric: str, model: str, seconds: float) -> list[dict]:
    """10 observations a minute, every one `seconds` long."""
    out = []
    for le in BUCKETS:
        inside = le == "+Inf" or float(le) >= seconds
        out.append({"series": f'{metric}_bucket{{model_name="{model}",engine="0",le="{le}"}}',
                    "values": "0+10x40" if inside else "0+0x40"})
    return out


def series(key: str, model: str, breach: bool) -> list[dict]:
    _, metric, how, _ = prometheus.SLOS[key]
    if how == "p95":
        limit_s = SLO[key] / 1000
        return _histogram(metric, model, limit_s * 4 if breach else limit_s / 4)
    if how == "error_rate":
        return [{"series": f'{metric}_total{{model_name="{model}",engine="0",finished_reason="error"}}',
                 "values": "0+5x40" if breach else "0+0x40"},
                {"series": f'{metric}_total{{model_name="{model}",engine="0",finished_reason="stop"}}',
                 "values": "0+10x40"}]
    return [{"series": f'{metric}{{model_name="{model}",engine="0"}}', "values": "0.97x40" if breach else "0.2x40"}]


def unit_tests(rules: dict, model: str) -> dict:
    tests = []
    for rule in rules["groups"][0]["rules"]:
        key = next(k for k, v in prometheus.SLOS.items() if v[0] == rule["alert"])
        for breach in (True, False):
            expected = [{"exp_labels": {**rule["labels"]}, "exp_annotations": rule["annotations"]}] if breach else []
            tests.append({"interval": "1m", "input_series": series(key, model, breach),
                          "alert_rule_test": [{"eval_time": "30m", "alertname": rule["alert"], "exp_alerts": expected},
                                              # not before `for` has passed
                                              {"eval_time": "4m", "alertname": rule["alert"], "exp_alerts": []}]})
    return {"rule_files": ["alerts.rules.yaml"], "evaluation_interval": "1m", "tests": tests}


def test_every_generated_rule_file_passes_promtool(tmp_path: Path) -> None:
    rule_files = compiled_rule_files(tmp_path)
    assert rule_files, "the example compiles no alerting rules"
    for path, data in sorted(rule_files.items()):
        d = tmp_path / path.replace("/", "_")
        d.mkdir()
        (d / "alerts.rules.yaml").write_bytes(data)
        check = promtool("check", "rules", "alerts.rules.yaml", cwd=d)
        assert check.returncode == 0, check.stdout + check.stderr
        rules = yaml.safe_load(data)
        assert {r["alert"] for r in rules["groups"][0]["rules"]} == {v[0] for v in prometheus.SLOS.values()}
        (d / "test.yaml").write_text(yaml.safe_dump(unit_tests(rules, "support-llm"), sort_keys=False))
        run = promtool("test", "rules", "test.yaml", cwd=d)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.count("SUCCESS") >= 1


def test_a_rule_that_misreads_its_metric_fails_promtool_test(tmp_path: Path) -> None:
    """The unit tests can fail: a TTFT objective read from the wrong histogram does not fire."""
    groups = prometheus.rule_groups("m", "dev", "s", "support-llm", {"ttftP95Ms": 500.0, "window": "5m", "for": "10m"},
                                    "0.32.0")
    good = yaml.safe_load(prometheus.rules_file(groups))
    groups[0]["rules"][0]["expr"] = groups[0]["rules"][0]["expr"].replace("time_to_first_token", "inter_token_latency")
    (tmp_path / "alerts.rules.yaml").write_bytes(prometheus.rules_file(groups))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(unit_tests(good, "support-llm"), sort_keys=False))
    run = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert run.returncode != 0 and "VllmTimeToFirstTokenP95High" in run.stdout + run.stderr


def test_prometheus_rule_carries_the_same_groups(tmp_path: Path) -> None:
    groups = prometheus.rule_groups("support-live", "staging", "support-llm", "support-llm", SLO, "0.32.0")
    doc = yaml.safe_load(prometheus.prometheus_rule("support-live", "support-staging", {"team": "cx"}, groups))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == groups
    (tmp_path / "from-crd.yaml").write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    check = promtool("check", "rules", "from-crd.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_metric_names_are_the_versions_own() -> None:
    used, metrics = prometheus.metric_list("0.32.0")
    assert used == "0.32.0" and metrics["vllm:kv_cache_usage_perc"] == "gauge"
    assert "vllm:gpu_cache_usage_perc" not in metrics  # renamed before 0.32
    groups = prometheus.rule_groups("m", "dev", "s", "x", SLO, "0.32.0")
    exprs = " ".join(r["expr"] for r in groups[0]["rules"])
    for name in ("vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
                 "vllm:e2e_request_latency_seconds_bucket", "vllm:request_queue_time_seconds_bucket",
                 "vllm:request_success_total", "vllm:kv_cache_usage_perc"):
        assert name in exprs
    queries = prometheus.dashboard_queries(prometheus.dashboard("m", "dev", "s", "x", SLO, "0.32.0"))
    assert len(queries) >= 12 and all("model_name=\"x\"" in q for q in queries)


@pytest.mark.parametrize("bad", ['a"b', "a\\b"])
def test_served_names_are_quoted_as_promql_strings(bad: str, tmp_path: Path) -> None:
    groups = prometheus.rule_groups("m", "dev", "s", bad, {"kvCacheUsage": 0.9, "window": "5m", "for": "1m"}, "0.32.0")
    (tmp_path / "r.yaml").write_bytes(prometheus.rules_file(groups))
    check = promtool("check", "rules", "r.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.dumps(bad) in groups[0]["rules"][0]["expr"]
