"""Serving SLOs of a Monitor as Prometheus alerting rules, a PrometheusRule and a Grafana dashboard.

From a Monitor whose `checks.slo` watches a ServingTarget, per environment:

    alerts.rules.yaml     a Prometheus rule file (what `promtool check rules` and `promtool test
                          rules` read, and what a plain Prometheus loads with rule_files)
    prometheusrule.yaml   the same groups as a prometheus-operator `PrometheusRule`, on the
                          Kubernetes serving platforms (kubernetes, kserve, helm); plan/apply
                          write it to the GitOps directory (`k8s_manifests.monitor-<name>`)
    dashboard.json        a Grafana dashboard of the engine's signals (vLLM production-stack's:
                          time to first token, inter-token latency, end-to-end latency, queue
                          time, KV-cache usage, running and waiting requests, finish reasons,
                          token throughput)

Every metric name comes from the pinned list of the serving target's vLLM version
(backends/vllm_metrics/<version>.json, generated from that release's source by
tools/gen_vllm_metrics.py), under the name that release gives it (`RENAMED`). A version without a
list uses the newest list and the compile reports it. An objective the version cannot measure
(no such metric, or no `error` finished_reason to count errors by) gets no rule: `gaps` names
it, and the compile reports it at its line. Queries select the server by its served model name
(vLLM's `model_name` label).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from specops.backends import crd, yaml_emit

METRICS_DIR = Path(__file__).resolve().parent / "vllm_metrics"
# prometheus-operator's CRD, vendored with its commit named in the README beside it.
RULE_CRD = Path(__file__).resolve().parent / "schemas" / "prometheus-operator" / "monitoring.coreos.com_prometheusrules.yaml"
OPERATOR_PLATFORMS = ("kubernetes", "kserve", "helm")
# plan/apply: the PrometheusRule is a Kubernetes manifest written into the GitOps directory
# like the serving targets' (resource `k8s_manifests.monitor-<name>`); the plain rule file and
# the dashboard are for people and for Prometheus's rule_files, not Kubernetes objects.
RESOURCE_TYPE = "k8s_manifests"
PROVIDER = "specops.backends.gitops_provider"
RESOURCE_FILES = ("prometheusrule.yaml",)

# spec key -> (alert name, metric, how it is read, what it is)
SLOS: dict[str, tuple[str, str, str, str]] = {
    "ttftP95Ms": ("VllmTimeToFirstTokenP95High", "vllm:time_to_first_token_seconds", "p95", "time to first token"),
    "itlP95Ms": ("VllmInterTokenLatencyP95High", "vllm:inter_token_latency_seconds", "p95", "inter-token latency"),
    "e2eP95Ms": ("VllmEndToEndLatencyP95High", "vllm:e2e_request_latency_seconds", "p95", "end-to-end request latency"),
    "queueTimeP95Ms": ("VllmQueueTimeP95High", "vllm:request_queue_time_seconds", "p95", "queue time"),
    "errorRate": ("VllmErrorRateHigh", "vllm:request_success", "error_rate", "share of requests that end in an error"),
    "kvCacheUsage": ("VllmKvCacheUsageHigh", "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage"),
}


# The same signal under the names older releases gave it, newest first. From vLLM's loggers.py:
# "Deprecated in 0.9.2 - Renamed as vllm:kv_cache_usage_perc" and "Deprecated in 0.11 - Renamed
# as vllm:inter_token_latency_seconds" (0.8.5 has only the old names; 0.11 both, or the old one
# hidden; 0.32 only the new ones).
RENAMED: dict[str, tuple[str, ...]] = {
    "vllm:kv_cache_usage_perc": ("vllm:gpu_cache_usage_perc",),
    "vllm:inter_token_latency_seconds": ("vllm:time_per_output_token_seconds",),
}


class MetricsUnavailable(ValueError):
    """A metric the rules need is not in the version's list."""


@functools.cache
def _list_doc(version: str) -> tuple[str, dict[str, Any]]:
    lists = {p.stem: p for p in METRICS_DIR.glob("*.json")}
    use = version if version in lists else max(lists, key=lambda v: tuple(int(x) for x in v.split(".")))
    return use, json.loads(lists[use].read_text(encoding="utf-8"))


def metric_list(version: str) -> tuple[str, dict[str, str]]:
    """(the version whose list is used, {metric: type}): the serving version's own list, else
    the newest one."""
    use, doc = _list_doc(version)
    return use, doc["metrics"]


def metric_name(metrics: dict[str, str], name: str) -> str | None:
    """The name this version's list gives the signal `name` (its newest name), if any."""
    return next((n for n in (name, *RENAMED.get(name, ())) if n in metrics), None)


def _series(metrics: dict[str, str], name: str, version: str) -> str:
    found = metric_name(metrics, name)
    if found is None:
        raise MetricsUnavailable(f"vLLM {version} has no metric {name}")
    return {"histogram": f"{found}_bucket", "counter": f"{found}_total"}.get(metrics[found], found)


def gaps(slo: dict[str, Any], version: str) -> dict[str, str]:
    """{SLO key: why} for the objectives the version's metrics cannot measure (no rule is
    written for them; a query on a name the server does not expose would never fire)."""
    used, doc = _list_doc(version)
    metrics = doc["metrics"]
    out = {}
    for key, (_, metric, how, what) in SLOS.items():
        if slo.get(key) is None:
            continue
        if metric_name(metrics, metric) is None:
            names = " or ".join((metric, *RENAMED.get(metric, ())))
            out[key] = f"vLLM {used} exposes no {what} metric ({names})"
        elif how == "error_rate" and "error" not in doc.get("finished_reasons", ["error"]):
            out[key] = (f"vLLM {used} counts no request errors: {metric} has finished_reason "
                        f"{', '.join(doc['finished_reasons'])} only")
    return out


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
    """One group of alerting rules, one per objective the version can measure (see `gaps`)."""
    used, metrics = metric_list(version)
    missing = gaps(slo, version)
    rules = []
    for key, (alert, _, how, what) in SLOS.items():
        limit = slo.get(key)
        if limit is None or key in missing:
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


def validate_rule(doc: dict[str, Any]) -> list[str]:
    """Errors of a PrometheusRule against prometheus-operator's CRD schema (v1, unknown fields
    rejected), sorted."""
    return crd.errors(doc, crd.vendored_schema(RULE_CRD, "v1"))


# ---- Grafana ------------------------------------------------------------------------------

def _quantiles(metric: str, *ps: float) -> tuple[tuple[str, str, str], ...]:
    return tuple((f"p{round(p * 100)}", f"histogram_quantile({p}, sum by (le) (rate({{s}}{{sel}}{{r}})))", metric)
                 for p in ps)


# (title, unit, [(legend, query template, signal)]): `{s}` becomes the signal's series in the
# version's names, `{sel}` the server's selector, `{r}` the rate window.
PANELS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Time to first token", "s", _quantiles("vllm:time_to_first_token_seconds", 0.5, 0.95, 0.99)),
    ("Inter-token latency", "s", _quantiles("vllm:inter_token_latency_seconds", 0.5, 0.95)),
    ("End-to-end request latency", "s", _quantiles("vllm:e2e_request_latency_seconds", 0.5, 0.95)),
    ("Queue time", "s", _quantiles("vllm:request_queue_time_seconds", 0.95)),
    ("KV-cache usage", "percentunit", (("usage", "max({s}{sel})", "vllm:kv_cache_usage_perc"),)),
    ("Requests running and waiting", "short", (("running", "sum({s}{sel})", "vllm:num_requests_running"),
                                               ("waiting", "sum({s}{sel})", "vllm:num_requests_waiting"))),
    ("Finished requests by reason", "reqps", (("{{finished_reason}}", "sum by (finished_reason) (rate({s}{sel}{r}))",
                                               "vllm:request_success"),)),
    ("Token throughput", "short", (("prompt", "sum(rate({s}{sel}{r}))", "vllm:prompt_tokens"),
                                   ("generation", "sum(rate({s}{sel}{r}))", "vllm:generation_tokens"))),
)


def _panels(model: str, metrics: dict[str, str], version: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, unit, [(legend, expr)]) per panel, in the version's names; a query on a metric the
    version lacks is left out (and a panel left without queries)."""
    sel = f"{{model_name={_label(model)}}}"
    out = []
    for title, unit, queries in PANELS:
        exprs = [(legend, template.format(s=_series(metrics, metric, version), sel=sel, r="[$__rate_interval]"))
                 for legend, template, metric in queries if metric_name(metrics, metric) is not None]
        if exprs:
            out.append((title, unit, exprs))
    return out


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


def resource_name(monitor: str) -> str:
    """Its folder in the GitOps directory, beside the serving targets' (hence the prefix)."""
    return f"monitor-{monitor}"


def emit(monitor: str, env: str, serving: str, model: str, slo: dict[str, Any], version: str,
         platform: str, namespace: str, labels: dict[str, str]) -> dict[str, bytes]:
    groups = rule_groups(monitor, env, serving, model, slo, version)
    files = {"alerts.rules.yaml": rules_file(groups),
             "dashboard.json": dashboard(monitor, env, serving, model, slo, version)}
    if platform in OPERATOR_PLATFORMS:
        files["prometheusrule.yaml"] = prometheus_rule(monitor, namespace, labels, groups)
    return files
