"""Alerting rules and dashboards of serving SLOs, checked by Prometheus's own promtool: every
generated rule file passes `promtool check rules`, and `promtool test rules` fires each alert on
synthetic vLLM series that break its objective and stays silent on series that keep it. The
series use the metric names of the pinned vLLM 0.32.0 list (backends/vllm_metrics), which the
vLLM end-to-end test checks against a live server's /metrics."""

from __future__ import annotations

import json
import re
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


def series(key: str, model: str, breach: bool, version: str = "0.32.0") -> list[dict]:
    _, metric, how, _ = prometheus.SLOS[key]
    metric = prometheus.metric_name(prometheus.metric_list(version)[1], metric)
    if how == "p95":
        limit_s = SLO[key] / 1000
        return _histogram(metric, model, limit_s * 4 if breach else limit_s / 4)
    if how == "error_rate":
        return [{"series": f'{metric}_total{{model_name="{model}",engine="0",finished_reason="error"}}',
                 "values": "0+5x40" if breach else "0+0x40"},
                {"series": f'{metric}_total{{model_name="{model}",engine="0",finished_reason="stop"}}',
                 "values": "0+10x40"}]
    return [{"series": f'{metric}{{model_name="{model}",engine="0"}}', "values": "0.97x40" if breach else "0.2x40"}]


def unit_tests(rules: dict, model: str, version: str = "0.32.0") -> dict:
    tests = []
    for rule in rules["groups"][0]["rules"]:
        key = next(k for k, v in prometheus.SLOS.items() if v[0] == rule["alert"])
        for breach in (True, False):
            expected = [{"exp_labels": {**rule["labels"]}, "exp_annotations": rule["annotations"]}] if breach else []
            tests.append({"interval": "1m", "input_series": series(key, model, breach, version),
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


def test_every_compiled_prometheus_rule_passes_the_operator_crd() -> None:
    """The PrometheusRule the example compiles validates against prometheus-operator's own CRD
    schema (vendored from v0.93.0, see backends/schemas/prometheus-operator/README.md)."""
    files = compile_repo(analyze(ROOT / "examples" / "support-assistant")).files()
    rules = {p: d for p, d in files.items() if p.endswith("prometheusrule.yaml")}
    assert rules, "the example compiles no PrometheusRule"
    for path, data in sorted(rules.items()):
        assert prometheus.validate_rule(yaml.safe_load(data)) == [], path


def test_the_operator_crd_catches_what_the_api_server_would_prune_or_refuse() -> None:
    groups = prometheus.rule_groups("m", "dev", "s", "x", SLO, "0.32.0")
    doc = yaml.safe_load(prometheus.prometheus_rule("m", "ns", {}, groups))
    rule = doc["spec"]["groups"][0]["rules"][0]
    rule["for"], rule["severity"] = "10 minutes", "page"  # not a duration; not a rule field
    doc["spec"]["groups"].append({"rules": []})  # a group needs a name
    doc["metadata"]["uid"] = "x"
    assert prometheus.validate_rule(doc) == [
        "metadata.uid: unexpected field",
        ("spec.groups.0.rules.0.for: '10 minutes' does not match "
         "'^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'"),
        "spec.groups.0.rules.0: Additional properties are not allowed ('severity' was unexpected)",
        "spec.groups.1: 'name' is a required property",
    ]


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


# ---- the metric names of each vLLM version -------------------------------------------------------

NAMES = re.compile(r"vllm:[a-z0-9_]+")


def _queried(exprs: list[str], metrics: dict[str, str]) -> set[str]:
    """The listed metrics the queries read (a series name less its _bucket/_total suffix); fails
    on a name the version does not expose."""
    out = set()
    for name in (n for e in exprs for n in NAMES.findall(e)):
        kind = {"_bucket": "histogram", "_total": "counter"}
        base = next((name.removesuffix(sfx) for sfx, k in kind.items()
                     if name.endswith(sfx) and metrics.get(name.removesuffix(sfx)) == k), name)
        assert base in metrics, f"{name} is not exposed by this version"
        out.add(base)
    return out


@pytest.mark.parametrize("version, kv, itl", [
    ("0.8.5", "vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"),
    ("0.11.0", "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
    ("0.32.0", "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"),
])
def test_rules_and_dashboards_use_the_versions_own_names(version: str, kv: str, itl: str, tmp_path: Path) -> None:
    used, metrics = prometheus.metric_list(version)
    assert used == version
    groups = prometheus.rule_groups("m", "dev", "s", "x", SLO, version)
    exprs = [r["expr"] for r in groups[0]["rules"]]
    dash = prometheus.dashboard_queries(prometheus.dashboard("m", "dev", "s", "x", SLO, version))
    read = _queried(exprs + dash, metrics)
    assert {kv, itl} <= read
    assert not ({"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"} - {kv}) & read
    # every panel of the dashboard is there, in this version's names
    assert len(dash) == 14
    # promtool fires each rule on synthetic series in this version's names, and only then
    (tmp_path / "alerts.rules.yaml").write_bytes(prometheus.rules_file(groups))
    rules = yaml.safe_load(prometheus.rules_file(groups))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(unit_tests(rules, "x", version), sort_keys=False))
    run = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("version", ["0.8.5", "0.11.0"])
def test_an_objective_the_version_cannot_measure_gets_no_rule_but_a_reason(version: str) -> None:
    """vLLM before 0.32 has no `error` finished_reason: an error-rate rule would never fire."""
    assert prometheus.gaps(SLO, version) == {
        "errorRate": f"vLLM {version} counts no request errors: vllm:request_success has finished_reason "
                     "abort, length, stop only"}
    alerts = {r["alert"] for r in prometheus.rule_groups("m", "dev", "s", "x", SLO, version)[0]["rules"]}
    assert alerts == {v[0] for k, v in prometheus.SLOS.items() if k != "errorRate"}
    assert prometheus.gaps(SLO, "0.32.0") == {}


@pytest.fixture
def lists_dir(tmp_path: Path, monkeypatch) -> Path:
    """A folder of metric lists in place of backends/vllm_metrics (the lists are cached per version)."""
    monkeypatch.setattr(prometheus, "METRICS_DIR", tmp_path)
    prometheus._list_doc.cache_clear()
    yield tmp_path
    prometheus._list_doc.cache_clear()


def test_a_metric_missing_from_a_version_is_a_gap_not_a_query(lists_dir: Path) -> None:
    doc = json.loads((ROOT / "backends" / "vllm_metrics" / "0.8.5.json").read_text())
    del doc["metrics"]["vllm:gpu_cache_usage_perc"]
    (lists_dir / "0.8.5.json").write_text(json.dumps(doc))
    assert prometheus.gaps({"kvCacheUsage": 0.9}, "0.8.5") == {
        "kvCacheUsage": "vLLM 0.8.5 exposes no KV-cache usage metric (vllm:kv_cache_usage_perc or "
                        "vllm:gpu_cache_usage_perc)"}
    assert prometheus.rule_groups("m", "dev", "s", "x", {"kvCacheUsage": 0.9, "window": "5m", "for": "1m"},
                                  "0.8.5")[0]["rules"] == []
    titles = [p["title"] for p in json.loads(prometheus.dashboard("m", "dev", "s", "x", SLO, "0.8.5"))["panels"]]
    assert "KV-cache usage" not in titles and len(titles) == 7


def test_compile_reports_the_objective_a_version_cannot_measure_at_its_line(tmp_path: Path) -> None:
    repo = tmp_path / "support-assistant"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    serving = repo / "serving" / "support-llm.yaml"
    serving.write_text(serving.read_text().replace("version: 0.32.0", "version: 0.8.5"))
    build = compile_repo(analyze(repo))
    warnings = [d for d in build.diagnostics.sorted() if "no alerting rule" in d.message]
    assert [(d.file, d.pos.line, d.message) for d in warnings] == [
        ("monitors/support-live.yaml", 24, ("vLLM 0.8.5 counts no request errors: vllm:request_success has "
                                            "finished_reason abort, length, stop only: no alerting rule for "
                                            "errorRate on serving target 'support-llm'"))]
    rules = yaml.safe_load(build.files()["staging/monitors/support-live/alerts.rules.yaml"])
    exprs = " ".join(r["expr"] for r in rules["groups"][0]["rules"])
    assert "vllm:gpu_cache_usage_perc" in exprs and "VllmErrorRateHigh" not in str(rules)
