"""Application Auto Scaling for a SageMaker endpoint variant (any engine: vLLM on LMI too).

When a ServingTarget's `replicas.max` exceeds `replicas.min`, the endpoint's variant gets a
scalable target (`RegisterScalableTarget`: sagemaker:variant:DesiredInstanceCount between min
and max) and a target-tracking policy (`PutScalingPolicy`), as boto3's application-autoscaling
client takes them. `replicas.target` picks the metric:

    rps           SageMakerVariantInvocationsPerInstance, value x 60 (the metric counts per minute)
    concurrency   SageMakerVariantConcurrentRequestsPerModelHighResolution (in-flight requests)
    cpu           CPUUtilization of the variant (/aws/sagemaker/Endpoints, Average, percent)

Without a target: SageMakerVariantInvocationsPerInstance at 70 per minute, the value AWS's
own autoscaling guide starts from.
"""

from __future__ import annotations

from typing import Any

from specops.ir import Serving

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
DEFAULT_INVOCATIONS_PER_MINUTE = 70
SCALE_IN_COOLDOWN_S = 300
SCALE_OUT_COOLDOWN_S = 60


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def _metric(node: Serving, endpoint: str, variant: str) -> tuple[dict[str, Any], float]:
    metric, value = node.autoscale_metric, node.autoscale_target
    if metric == "concurrency":
        return ({"PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution"}}, float(value or 1))
    if metric == "cpu":
        return ({"CustomizedMetricSpecification": {
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}],
            "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints", "Statistic": "Average",
            "Unit": "Percent"}}, float(value or 70))
    per_minute = (value * 60) if metric == "rps" and value else DEFAULT_INVOCATIONS_PER_MINUTE
    return ({"PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}},
            float(per_minute))


def scaling_requests(node: Serving, endpoint: str, variant: str) -> dict[str, dict[str, Any]]:
    """{"RegisterScalableTarget": {...}, "PutScalingPolicy": {...}}, or {} for a fixed count."""
    if node.replicas_max <= max(1, node.replicas_min):
        return {}
    rid = resource_id(endpoint, variant)
    spec, target = _metric(node, endpoint, variant)
    return {
        "RegisterScalableTarget": {"MaxCapacity": node.replicas_max, "MinCapacity": max(1, node.replicas_min),
                                   "ResourceId": rid, "ScalableDimension": DIMENSION,
                                   "ServiceNamespace": "sagemaker"},
        "PutScalingPolicy": {"PolicyName": f"{endpoint}-target-tracking", "PolicyType": "TargetTrackingScaling",
                             "ResourceId": rid, "ScalableDimension": DIMENSION, "ServiceNamespace": "sagemaker",
                             "TargetTrackingScalingPolicyConfiguration": {
                                 **spec, "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
                                 "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S, "TargetValue": target}},
    }


def validate_scaling(requests: dict[str, dict[str, Any]]) -> list[str]:
    """Offline check of the scaling requests against botocore's application-autoscaling model."""
    import botocore.session  # lazy: heavy SDK
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("application-autoscaling")
    errors = []
    for op, params in sorted(requests.items()):
        try:
            validate_parameters(params, model.operation_model(op).input_shape)
        except ParamValidationError as exc:
            errors.append(f"{op}: {exc.kwargs.get('report', exc)}")
    return errors


# ---- live side (the sagemaker_endpoint provider calls these with its clients) -------------------


def _subset(want: Any, have: Any) -> Any:
    """`have` cut down to the keys `want` names (recursively): what the service echoes back,
    without the fields it adds (ARNs, alarms, times)."""
    if isinstance(want, dict) and isinstance(have, dict):
        return {k: _subset(v, have.get(k)) for k, v in want.items()}
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        return [_subset(w, h) for w, h in zip(want, have)]
    return have


def read_scaling(client: Any, requests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The live scalable target and policy, in the requests' own shape ({} parts when absent)."""
    target = requests.get("RegisterScalableTarget")
    if target is None:
        return {}
    found = client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[target["ResourceId"]],
                                             ScalableDimension=DIMENSION).get("ScalableTargets", [])
    out: dict[str, Any] = {"RegisterScalableTarget": _subset(target, found[0]) if found else None}
    policy = requests["PutScalingPolicy"]
    pols = client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=target["ResourceId"],
                                            ScalableDimension=DIMENSION, PolicyNames=[policy["PolicyName"]])
    pols = pols.get("ScalingPolicies", [])
    out["PutScalingPolicy"] = _subset(policy, pols[0]) if pols else None
    return out


def apply_scaling(client: Any, requests: dict[str, dict[str, Any]]) -> bool:
    """Register the scalable target and put the policy (both idempotent upserts); False when
    the endpoint does not autoscale."""
    if "RegisterScalableTarget" not in requests:
        return False
    client.register_scalable_target(**requests["RegisterScalableTarget"])
    client.put_scaling_policy(**requests["PutScalingPolicy"])
    return True


def remove_scaling(client: Any, resource: str, policy_name: str | None) -> None:
    """Deregister a variant's scaling (policy first); absent ones are fine."""
    for call, kwargs in (("delete_scaling_policy", {"PolicyName": policy_name}), ("deregister_scalable_target", {})):
        if call == "delete_scaling_policy" and not policy_name:
            continue
        try:
            getattr(client, call)(ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION,
                                  **kwargs)
        except Exception as err:  # noqa: BLE001 - not found is the goal; others surface in the next read
            if "ObjectNotFound" not in str(err) and "not found" not in str(err).lower():
                raise
