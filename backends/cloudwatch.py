"""A Monitor's serving SLOs on a SageMaker endpoint, as CloudWatch alarms.

SageMaker publishes per-endpoint metrics to CloudWatch (namespace `AWS/SageMaker`, dimensions
EndpointName and VariantName): `ModelLatency` (microseconds, per request) and `Invocations`,
`Invocation5XXErrors`. End-to-end latency p95 becomes an alarm on ModelLatency's p95 extended
statistic; the error rate an alarm on the metric-math ratio of 5XX errors to invocations. The
engine's token-level signals (time to first token, inter-token latency, KV-cache usage, queue
time) are not published by the endpoint, and the compile says so at the spec's line.

Output: `cloudwatch-alarms.json`, a list of `cloudwatch.put_metric_alarm(**request)` bodies,
which plan/apply manage as resource `cloudwatch_alarms.<monitor>` (backends/cloudwatch_provider.py).
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACE = "AWS/SageMaker"
ALARMS_FILE = "cloudwatch-alarms.json"
# plan/apply: the alarms are resource `cloudwatch_alarms.<monitor>` (backends/registry.py ALERTING).
RESOURCE_TYPE = "cloudwatch_alarms"
PROVIDER = "specops.backends.cloudwatch_provider"
RESOURCE_FILES = (ALARMS_FILE,)
CARRIED = ("e2eP95Ms", "errorRate")
NOT_CARRIED = ("ttftP95Ms", "itlP95Ms", "kvCacheUsage", "queueTimeP95Ms")


def _seconds(d: str) -> int:
    return int(d[:-1]) * {"s": 1, "m": 60, "h": 3600}[d[-1]]


def _period(window: str) -> int:
    # CloudWatch periods of standard metrics: 60 s or a multiple of 60.
    return max(60, _seconds(window) // 60 * 60)


def alarm_requests(monitor: str, env: str, endpoint: str, variant: str, slo: dict[str, Any],
                   tags: list[dict[str, str]]) -> list[dict[str, Any]]:
    period = _period(slo["window"])
    periods = max(1, -(-_seconds(slo["for"]) // period))
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    base = {"ActionsEnabled": False, "EvaluationPeriods": periods, "DatapointsToAlarm": periods,
            "TreatMissingData": "notBreaching", "Tags": tags}
    out = []
    if slo.get("e2eP95Ms") is not None:
        out.append({**base, "AlarmName": f"specops-{monitor}-{env}-e2e-p95",
                    "AlarmDescription": f"specops monitor {monitor}: {endpoint} end-to-end latency p95 above "
                                        f"{slo['e2eP95Ms']:g} ms",
                    "Namespace": NAMESPACE, "MetricName": "ModelLatency", "Dimensions": dims,
                    "ExtendedStatistic": "p95", "Period": period, "Unit": "Microseconds",
                    "Threshold": float(slo["e2eP95Ms"]) * 1000, "ComparisonOperator": "GreaterThanThreshold"})
    if slo.get("errorRate") is not None:
        def stat(id_: str, name: str) -> dict[str, Any]:
            return {"Id": id_, "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims},
                "Period": period, "Stat": "Sum"}}
        out.append({**base, "AlarmName": f"specops-{monitor}-{env}-error-rate",
                    "AlarmDescription": f"specops monitor {monitor}: {endpoint} share of 5XX responses above "
                                        f"{slo['errorRate']:.0%}",
                    "Metrics": [stat("errors", "Invocation5XXErrors"), stat("invocations", "Invocations"),
                                {"Id": "rate", "Expression": "errors / invocations", "Label": "error rate",
                                 "ReturnData": True}],
                    "Threshold": float(slo["errorRate"]), "ComparisonOperator": "GreaterThanThreshold"})
    return out


def resource_name(monitor: str) -> str:
    return monitor


def emit(monitor: str, env: str, endpoint: str, variant: str, slo: dict[str, Any],
         tags: list[dict[str, str]]) -> dict[str, bytes]:
    reqs = alarm_requests(monitor, env, endpoint, variant, slo, tags)
    return {ALARMS_FILE: (json.dumps(reqs, indent=2, sort_keys=True) + "\n").encode()} if reqs else {}
