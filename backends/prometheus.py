"""Serving SLOs of a Monitor as Prometheus alerting rules, a PrometheusRule and a Grafana dashboard.

From a Monitor whose `checks.slo` watches a ServingTarget, per environment:

    alerts.rules.yaml     a Prometheus rule file (what `promtool check rules` and `promtool test
                          rules` read, and what a plain Prometheus loads with rule_files)
    prometheusrule.yaml   the same groups as a prometheus-operator `PrometheusRule`, on the
                          Kubernetes serving platforms (kubernetes, kserve, helm)
    dashboard.json        a Grafana dashboard of the engine's signals (vLLM production-stack's:
                          time to first token, inter-token latency, end-to-end latency, queue
                          time, KV-cache usage, running and waiting requests, finish reasons,
                          token throughput)

Every metric name comes from the pinned list of the serving target's vLLM version
(backends/vllm_metrics/<version>.json, generated from that release's source by
tools/gen_vllm_metrics.py). A version without a list uses the newest list and the compile
reports it. Queries select the server by its served model name (vLLM's `model_name` label).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from specops.backends import yaml_emit

METRICS_DIR = Path(__file__).resolve().parent / "vllm_metrics"
OPERATOR_PLATFORMS = ("kubernetes", "kserve", "helm")

# spec key -> (alert name, metric, how it is read, what it is)
SLOS: dict[str, tuple[str, str, str, str]] = {
    "ttftP95Ms": ("VllmTimeToFirstTokenP95High", "vllm:time_to_first_token_seconds", "p95", "time to first token"),
    "itlP95Ms": ("VllmInterTokenLatencyP95High", "vllm:inter_token_latency_seconds", "p95", "inter-token latency"),
    "e2eP95Ms": ("VllmEndToEndLatencyP95High", "vllm:e2e_request_latency_seconds", "p95", "end-to-end request latency"),
    "queueTimeP95Ms": ("VllmQueueTimeP95High", "vllm:request_queue_time_seconds", "p95", "queue time"),
    "errorRate": ("VllmErrorRateHigh", "vllm:request_success", "error_rate", "share of requests that end in an error"),
    "kvCacheUsage": ("VllmKvCacheUsageHigh", "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage"),
}


class MetricsUnavailable(ValueError):
    """A metric the rules need is not in the version's list."""


@functools.cache
def metric_list(version: str) -> tuple[str, dict[str, str]]:
    """(the version whose list is used, {metric: type}): the serving version's own list, else
    the newest one."""
    lists = {p.stem: p for p in METRICS_DIR.glob("*.json")}
    use = version if version in lists else max(lists, key=lambda v: tuple(int(x) for x in v.split(".")))
    return use, json.loads(lists[use].read_text(encoding="utf-8"))["metrics"]


def _series(metrics: dict[str, str], name: str, version: str) -> str:
    kind = metrics.get(name)
    if kind is None:
        raise MetricsUnavailable(f"vLLM {version} has no metric {name}")
    return {"histogram": f"{name}_bucket", "counter": f"{name}_total"}.get(kind, name)


def _label(v: str) -> str:
    return json.dumps(v)  # a PromQL string literal: double-quoted with JSON's escapes


def slo_expr(key: str, limit: float, model: str, window: str, metrics: dict[str, str], version: str) -> str:
    _, metric, how, _ = SLOS[key]
    sel = f"{{model_name={_label(model)}}}"
    series = _series(metrics, metric, version)
    if how == "p95":
        return (f"histogram_quantile(0.95, sum by (le) (rate({series}{sel}[{window}]))) > {limit / 1000:g}")
    if how == "error_rate":
        err = f"{{model_name={_label(model)}, finished_reason=\"error\"}}"
        return (f"sum(rate({series}{err}[{window}])) / sum(rate({series}{sel}[{window}])) > {limit:g}")
    return f"max({series}{sel}) > {limit:g}"


def rule_groups(monitor: str, env: str, serving: str, model: str, slo: dict[str, Any], version: str) -> list[dict]:
    used, metrics = metric_list(version)
    rules = []
    for key, (alert, _, how, what) in SLOS.items():
        limit = slo.get(key)
        if limit is None:
            continue
        shown = f"{limit:g} ms" if how == "p95" else f"{limit:.0%}"
        rules.append({
            "alert": alert,
            "expr": slo_expr(key, float(limit), model, slo["window"], metrics, used),
            "for": slo["for"],
            "labels": {"severity": "warning", "specops_monitor": monitor, "specops_env": env,
                       "serving_target": serving},
            "annotations": {
                "summary": f"{serving} ({env}): {what} above its objective ({shown})",
                "description": f"Monitor {monitor}: {what} of model {model} has been above {shown} for "
                               f"{slo['for']}.",
            },
        })
    return [{"name": f"specops-{monitor}-{env}", "rules": rules}]


def rules_file(groups: list[dict]) -> bytes:
    return yaml_emit.dump({"groups": groups})


def prometheus_rule(name: str, namespace: str, labels: dict[str, str], groups: list[dict]) -> bytes:
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": {**labels, "app.kubernetes.io/managed-by": "specops"}},
           "spec": {"groups": groups}}
    return yaml_emit.dump(doc)


# ---- Grafana ------------------------------------------------------------------------------

def _panels(model: str, metrics: dict[str, str], version: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, unit, [(legend, expr)]) per panel."""
    sel = f"{{model_name={_label(model)}}}"
    rate = "[$__rate_interval]"

    def q(p: float, metric: str) -> str:
        return f"histogram_quantile({p}, sum by (le) (rate({_series(metrics, metric, version)}{sel}{rate})))"

    ttft, itl, e2e, queue = (m for _, m, how, _ in (SLOS["ttftP95Ms"], SLOS["itlP95Ms"], SLOS["e2eP95Ms"],
                                                    SLOS["queueTimeP95Ms"]))
    success = _series(metrics, "vllm:request_success", version)
    return [
        ("Time to first token", "s", [("p50", q(0.5, ttft)), ("p95", q(0.95, ttft)), ("p99", q(0.99, ttft))]),
        ("Inter-token latency", "s", [("p50", q(0.5, itl)), ("p95", q(0.95, itl))]),
        ("End-to-end request latency", "s", [("p50", q(0.5, e2e)), ("p95", q(0.95, e2e))]),
        ("Queue time", "s", [("p95", q(0.95, queue))]),
        ("KV-cache usage", "percentunit", [("usage", f"max({_series(metrics, 'vllm:kv_cache_usage_perc', version)}{sel})")]),
        ("Requests running and waiting", "short", [
            ("running", f"sum({_series(metrics, 'vllm:num_requests_running', version)}{sel})"),
            ("waiting", f"sum({_series(metrics, 'vllm:num_requests_waiting', version)}{sel})")]),
        ("Finished requests by reason", "reqps", [("{{finished_reason}}",
                                                   f"sum by (finished_reason) (rate({success}{sel}{rate}))")]),
        ("Token throughput", "short", [
            ("prompt", f"sum(rate({_series(metrics, 'vllm:prompt_tokens', version)}{sel}{rate}))"),
            ("generation", f"sum(rate({_series(metrics, 'vllm:generation_tokens', version)}{sel}{rate}))")]),
    ]


def dashboard(monitor: str, env: str, serving: str, model: str, slo: dict[str, Any], version: str) -> bytes:
    used, metrics = metric_list(version)
    panels = []
    for i, (title, unit, queries) in enumerate(_panels(model, metrics, used)):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for j, (legend, expr) in enumerate(queries)],
        })
    doc = {
        "title": f"{serving} ({env}) - vLLM {used}", "uid": f"specops-{monitor}-{env}"[:40],
        "tags": ["specops", "vllm", f"monitor:{monitor}"], "schemaVersion": 39, "version": 1,
        "editable": True, "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "annotations": {"list": []}, "panels": panels,
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def dashboard_queries(data: bytes) -> list[str]:
    """Every query of a dashboard, with Grafana's $__rate_interval as a plain 1m (to run them)."""
    doc = json.loads(data)
    return [t["expr"].replace("$__rate_interval", "1m") for p in doc["panels"] for t in p["targets"]]


def emit(monitor: str, env: str, serving: str, model: str, slo: dict[str, Any], version: str,
         platform: str, namespace: str, labels: dict[str, str]) -> dict[str, bytes]:
    groups = rule_groups(monitor, env, serving, model, slo, version)
    files = {"alerts.rules.yaml": rules_file(groups),
             "dashboard.json": dashboard(monitor, env, serving, model, slo, version)}
    if platform in OPERATOR_PLATFORMS:
        files["prometheusrule.yaml"] = prometheus_rule(monitor, namespace, labels, groups)
    return files
