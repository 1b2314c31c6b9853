"""SageMaker endpoints for classical models and Application Auto Scaling for every endpoint.

Requests are checked offline against botocore's service models, then driven through the
`sagemaker_endpoint` provider against moto's real server on 127.0.0.1: CreateModel /
CreateEndpointConfig / CreateEndpoint on a CPU instance (ml.m5) for a classical model and on
ml.g4dn for an LLM (moto rejects g5/g6/p4d/p5), the container code uploaded to S3, and the
scalable target + target-tracking policy read back from application-autoscaling. A scaling
change made through boto3 reads as drift.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from specops.backends import sagemaker_autoscaling as autoscaling
from specops.backends import sagemaker_classical as sc
from specops.backends import sagemaker_endpoint as sme
from specops.backends.provider import Desired, attributes_of, content_hash, make_provider
from specops.gpus import CPU_INSTANCES
from specops.ir import Serving, Source
from specops.state import ResourceState
from tests.fixtures.ir_samples import AWS, serving
from tests.moto_server import aws_test_env, client, moto_server

ROOT = Path(__file__).resolve().parents[2]


def classical(**kw) -> Serving:
    base = dict(
        name="fare-api", env="prod", target=AWS, model="nyc-taxi-model", model_uri="registry://nyc-taxi-model",
        model_config=None, engine_version="1.7.1", engine_args={}, accelerator="", accelerator_count=0,
        replicas_min=1, replicas_max=4, instance_type="ml.m5.xlarge", image="seldonio/mlserver:1.7.1",
        labels={"team": "mobility"}, source=Source("serving/endpoint.yaml", 1, 1), engine="mlserver",
        runtime="sklearn", features=(("distance", "FP64"),), registry="nyc-taxi-model",
        model_artifact_uri="s3://acme-ml-prod-artifacts/prod/nyc-taxi-model/model", request_timeout_ms=3000,
        max_concurrency=2, autoscale_metric="rps", autoscale_target=20, model_revision="pipeline-0123456789abcdef")
    base.update(kw)
    return Serving(**base)


def desired(node: Serving) -> Desired:
    files = sme.emit(node)
    return Desired(address=f"sagemaker_endpoint.{node.name}", type="sagemaker_endpoint", name=node.name,
                   env=node.env, content_hash=content_hash(files), files=files, attributes=attributes_of(files),
                   depends_on=(), target=node.target, spec=f"ServingTarget/{node.name}")


def state_of(d: Desired, ids: dict, outputs: dict) -> ResourceState:
    return ResourceState(address=d.address, type=d.type, name=d.name, content_hash=d.content_hash, ids=ids,
                         outputs=outputs, attributes=d.attributes, depends_on=[])


@pytest.fixture(scope="module")
def moto_endpoint():
    with aws_test_env(), moto_server() as endpoint:
        client("s3", endpoint).create_bucket(Bucket="acme-ml-prod-artifacts")
        yield endpoint


def test_classical_requests_are_valid_and_carry_the_model_and_request_settings():
    node = classical()
    reqs = json.loads(sme.emit(node)["endpoint.json"])
    assert sme.validate_requests(reqs) == []
    c = reqs["CreateModel"]["PrimaryContainer"]
    assert c["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert c["ModelDataSource"]["S3DataSource"] == {"CompressionType": "None", "S3DataType": "S3Prefix",
                                                    "S3Uri": "s3://acme-ml-prod-artifacts/prod/nyc-taxi-model/model/"}
    env = c["Environment"]
    assert env["SAGEMAKER_MODEL_SERVER_TIMEOUT"] == "3" and env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "2"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"].startswith("s3://acme-ml-prod-artifacts/prod/nyc-taxi-model/serving/")
    assert reqs["CreateEndpointConfig"]["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    # SageMaker's own tags, not Kubernetes labels.
    keys = {t["Key"] for t in reqs["CreateEndpoint"]["Tags"]}
    assert keys == {"specops:engine", "specops:model", "specops:serving-target", "team"}
    policy = reqs["PutScalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert policy["TargetValue"] == 1200.0  # 20 rps = 1200 invocations per minute
    assert reqs["RegisterScalableTarget"]["MinCapacity"] == 1 and reqs["RegisterScalableTarget"]["MaxCapacity"] == 4


def test_a_new_model_revision_is_a_new_sagemaker_model():
    a = json.loads(sme.emit(classical())["endpoint.json"])
    b = json.loads(sme.emit(classical(model_revision="pipeline-fedcba9876543210"))["endpoint.json"])
    assert a["CreateModel"]["ModelName"] != b["CreateModel"]["ModelName"]
    assert a["CreateEndpoint"]["EndpointName"] == b["CreateEndpoint"]["EndpointName"]


def test_sourcedir_is_deterministic_and_pins_the_training_libraries():
    one, two = sc.sourcedir(classical()), sc.sourcedir(classical())
    assert one == two
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(one))) as tar:
        names = tar.getnames()
        reqs = tar.extractfile("requirements.txt").read().decode()
    assert names == ["inference.py", "requirements.txt"]
    constraints = (ROOT / ".ci" / "constraints.txt").read_text().lower().splitlines()
    for lib, version in sc.PINNED.items():
        assert f"{lib}=={version}" in constraints, lib  # the container loads what CI trains with
    assert reqs == "scikit-learn==1.9.1\njoblib==1.6.0\n"


@pytest.mark.parametrize("metric,want", [
    ("concurrency", "SageMakerVariantConcurrentRequestsPerModelHighResolution"),
    ("rps", "SageMakerVariantInvocationsPerInstance"),
    (None, "SageMakerVariantInvocationsPerInstance"),
])
def test_scaling_metrics_are_valid_requests(metric, want):
    reqs = autoscaling.scaling_requests(classical(autoscale_metric=metric, autoscale_target=5 if metric else None),
                                        "fare-api-prod", "AllTraffic")
    assert autoscaling.validate_scaling(reqs) == []
    cfg = reqs["PutScalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] == want


def test_cpu_scaling_uses_the_variant_cpu_metric():
    reqs = autoscaling.scaling_requests(classical(autoscale_metric="cpu", autoscale_target=60), "e", "AllTraffic")
    assert autoscaling.validate_scaling(reqs) == []
    spec = reqs["PutScalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert spec["MetricName"] == "CPUUtilization" and spec["Namespace"] == "/aws/sagemaker/Endpoints"


def test_fixed_count_has_no_scaling():
    assert autoscaling.scaling_requests(classical(replicas_max=1), "e", "AllTraffic") == {}


def test_checks_refuse_gpu_instances_auth_and_file_stores():
    bad = classical(instance_type="ml.g4dn.xlarge", auth_mode="key", auth_secret=("env", "KEY", None),
                    model_artifact_uri="file://.specops/artifacts/prod/m/model")
    msgs = [d.message for d in sme.check(bad)]
    assert any("not a CPU instance type" in m for m in msgs)
    assert any("IAM" in m for m in msgs)
    assert any("reads it from S3" in m for m in msgs)
    assert sme.check(classical()) == []
    assert {"ml.m5.xlarge", "ml.c5.large", "ml.m6i.2xlarge"} <= set(CPU_INSTANCES)


def _round_trip(moto_endpoint: str, node: Serving) -> None:
    p = make_provider("sagemaker_endpoint", env="prod", target=AWS, root=Path("."),
                      options={"endpoint_url": moto_endpoint})
    d = desired(node)
    ids, out = p.apply(d, None)
    assert out["endpoint"] == "created" and out["autoscaling"] == f"{node.replicas_min}..{node.replicas_max}"
    st = state_of(d, ids, out)
    live = p.read(d, st)
    assert live.exists and live.content_hash == d.content_hash
    aas = client("application-autoscaling", moto_endpoint)
    (target,) = [t for t in aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
                 if t["ResourceId"] == f"endpoint/{ids['endpoint']}/variant/AllTraffic"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (node.replicas_min, node.replicas_max)
    # Someone raises the maximum by hand: drift, and the field says what moved.
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=target["ResourceId"],
                                 ScalableDimension=autoscaling.DIMENSION, MinCapacity=node.replicas_min,
                                 MaxCapacity=node.replicas_max + 6)
    drift = p.read(d, st)
    assert drift.exists and drift.content_hash != d.content_hash
    assert drift.attributes["RegisterScalableTarget"]["MaxCapacity"] == node.replicas_max + 6
    p.apply(d, st)  # reconcile: the specs win again
    assert p.read(d, st).content_hash == d.content_hash
    p.delete(st)
    assert p.read(d, None).exists is False
    assert not [t for t in aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
                if t["ResourceId"] == target["ResourceId"]]  # deregistered with the endpoint


def test_classical_endpoint_round_trip_on_ml_m5(moto_endpoint):
    node = classical()
    _round_trip(moto_endpoint, node)
    reqs = json.loads(desired(node).files["endpoint.json"])
    uri = reqs["CreateModel"]["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = client("s3", moto_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == sc.sourcedir(node)


def test_llm_endpoint_autoscales_too_on_ml_g4dn(moto_endpoint):
    node = dataclasses.replace(serving(AWS, env="prod"), name="support-llm-scaled")
    assert node.replicas_max > node.replicas_min and node.instance_type == "ml.g4dn.xlarge"
    _round_trip(moto_endpoint, node)
