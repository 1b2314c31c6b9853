"""SageMaker endpoint emission (LMI vLLM container).

Request shapes are checked two ways: offline with botocore's own SageMaker service model
(parameter validation), and by sending them through boto3 to moto's server on 127.0.0.1 and
reading them back with describe_*. moto stands in for AWS (no account here); per FACTS it
rejects ml.g5/g6/p4d/p5 instance types, so round trips use ml.g4dn.*.
"""

from __future__ import annotations

import dataclasses
import json
import socket

import pytest
import yaml

from specops.backends import sagemaker_endpoint as sm
from specops.ir import Adapter, Source, Target
from tests.fixtures.ir_samples import AWS, serving


def config_for(node, extra: dict | None = None) -> bytes:
    return yaml.safe_dump({"model": node.model_uri, **node.engine_args, **(extra or {})},
                          sort_keys=True).encode()


def requests_for(node, extra: dict | None = None) -> dict:
    return json.loads(sm.emit(node, config_for(node, extra))["endpoint.json"])


@pytest.fixture(scope="module")
def sagemaker_client(tmp_path_factory):
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield boto3.client("sagemaker", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    finally:
        server.stop()


def test_requests_are_valid_botocore_shapes():
    node = serving(AWS, count=4)
    reqs = requests_for(node)
    assert list(reqs) == ["CreateEndpoint", "CreateEndpointConfig", "CreateModel", "PutScalingPolicy",
                          "RegisterScalableTarget"]  # sorted keys; max 3 > min 1: autoscaling
    assert sm.validate_requests(reqs) == []


def test_offline_validation_catches_bad_keys_and_types():
    reqs = requests_for(serving(AWS))
    reqs["CreateModel"]["PrimaryContainer"]["Enviroment"] = {}
    reqs["CreateEndpointConfig"]["ProductionVariants"][0]["InitialInstanceCount"] = "1"
    del reqs["CreateEndpoint"]["EndpointName"]
    errors = sm.validate_requests(reqs)
    assert len(errors) == 3
    assert "Enviroment" in errors[2] and "InitialInstanceCount" in errors[1] and "EndpointName" in errors[0]


def test_round_trip_through_boto3_and_moto(sagemaker_client):
    node = serving(AWS, count=1)  # ml.g4dn.xlarge
    reqs = requests_for(node)
    sagemaker_client.create_model(**reqs["CreateModel"])
    sagemaker_client.create_endpoint_config(**reqs["CreateEndpointConfig"])
    sagemaker_client.create_endpoint(**reqs["CreateEndpoint"])

    model = sagemaker_client.describe_model(ModelName=reqs["CreateModel"]["ModelName"])
    assert model["PrimaryContainer"]["Image"] == reqs["CreateModel"]["PrimaryContainer"]["Image"]
    assert model["PrimaryContainer"]["Environment"] == reqs["CreateModel"]["PrimaryContainer"]["Environment"]
    assert model["ExecutionRoleArn"] == AWS.role_arn

    cfg = sagemaker_client.describe_endpoint_config(EndpointConfigName=reqs["CreateEndpointConfig"]["EndpointConfigName"])
    (variant,) = cfg["ProductionVariants"]
    sent = reqs["CreateEndpointConfig"]["ProductionVariants"][0]
    for key in ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount", "InitialVariantWeight"):
        assert variant[key] == sent[key]

    ep = sagemaker_client.describe_endpoint(EndpointName="support-llm-staging")
    assert ep["EndpointConfigName"] == reqs["CreateEndpoint"]["EndpointConfigName"]
    tags = sagemaker_client.list_tags(ResourceArn=ep["EndpointArn"])["Tags"]
    # SageMaker's own tags: the spec's labels and what specops serves, no Kubernetes labels.
    assert {"Key": "specops:serving-target", "Value": "support-llm"} in tags
    assert not [t for t in tags if t["Key"].startswith("app.kubernetes.io/")]


def test_engine_settings_become_lmi_environment():
    node = serving(AWS, count=4)
    env = requests_for(node, {"max-num-seqs": 64, "quantization": "fp8", "enforce-eager": False,
                              "port": 9000, "host": "0.0.0.0",
                              "speculative-config": {"method": "ngram", "num_speculative_tokens": 3}},
                       )["CreateModel"]["PrimaryContainer"]["Environment"]
    assert env["HF_MODEL_ID"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "4" and "OPTION_TENSOR_PARALLEL_SIZE" not in env
    assert env["OPTION_MAX_MODEL_LEN"] == "8192"
    assert env["OPTION_MAX_ROLLING_BATCH_SIZE"] == "64" and "OPTION_MAX_NUM_SEQS" not in env
    assert env["OPTION_QUANTIZE"] == "fp8"
    assert env["OPTION_ENABLE_PREFIX_CACHING"] == "true" and env["OPTION_ENFORCE_EAGER"] == "false"
    assert env["OPTION_GPU_MEMORY_UTILIZATION"] == "0.9"
    assert json.loads(env["OPTION_SPECULATIVE_CONFIG"]) == {"method": "ngram", "num_speculative_tokens": 3}
    assert (env["OPTION_ASYNC_MODE"], env["OPTION_ROLLING_BATCH"]) == ("true", "disable")
    assert not {"OPTION_PORT", "OPTION_HOST", "OPTION_MODEL"} & set(env)
    assert all(isinstance(v, str) for v in env.values())


def test_defaults_pinned_to_vllm_not_lmi():
    node = dataclasses.replace(serving(AWS), engine_args={"enable-lora": True})
    env = requests_for(node)["CreateModel"]["PrimaryContainer"]["Environment"]
    assert env["OPTION_MAX_ROLLING_BATCH_SIZE"] == "256" and env["OPTION_MAX_LORAS"] == "1"
    assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "1"


@pytest.mark.parametrize("region,image", [
    ("us-east-1", "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.36.0-lmi20.0.0-cu128-v1.0"),
    ("ap-northeast-3", "364406365360.dkr.ecr.ap-northeast-3.amazonaws.com/djl-inference:0.36.0-lmi20.0.0-cu128-v1.0"),
    ("cn-north-1", "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/djl-inference:0.36.0-lmi20.0.0-cu128-v1.0"),
])
def test_lmi_image_per_region(region, image):
    node = serving(dataclasses.replace(AWS, region=region))
    assert requests_for(node)["CreateModel"]["PrimaryContainer"]["Image"] == image


def test_ecr_image_is_used_as_given():
    own = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/lmi:custom"
    node = dataclasses.replace(serving(AWS), image=own)
    assert requests_for(node)["CreateModel"]["PrimaryContainer"]["Image"] == own


def test_variant_canary_and_instance_settings():
    node = dataclasses.replace(serving(AWS), replicas_min=2, canary_percent=25)
    reqs = requests_for(node)
    (variant,) = reqs["CreateEndpointConfig"]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g4dn.xlarge" and variant["InitialInstanceCount"] == 2
    assert variant["ModelName"] == reqs["CreateModel"]["ModelName"]
    routing = reqs["CreateEndpoint"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY" and routing["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    no_canary = requests_for(dataclasses.replace(node, canary_percent=0))
    assert "DeploymentConfig" not in no_canary["CreateEndpoint"]


def test_names_follow_content_and_endpoint_name_is_stable():
    node = serving(AWS)
    a, b = requests_for(node), requests_for(node, {"max-model-len": 4096})
    assert a["CreateModel"]["ModelName"] != b["CreateModel"]["ModelName"]
    assert a["CreateEndpointConfig"]["EndpointConfigName"] != b["CreateEndpointConfig"]["EndpointConfigName"]
    assert a["CreateEndpoint"]["EndpointName"] == b["CreateEndpoint"]["EndpointName"] == "support-llm-staging"
    long = dataclasses.replace(node, name="x" * 70)
    names = requests_for(long)
    assert len(names["CreateModel"]["ModelName"]) <= 63 and len(names["CreateEndpoint"]["EndpointName"]) <= 63
    assert sm.validate_requests(names) == []


def test_byte_identical():
    node = serving(AWS)
    shuffled = dataclasses.replace(node, engine_args=dict(reversed(list(node.engine_args.items()))))
    assert sm.emit(node) == sm.emit(shuffled)
    assert sm.emit(node, config_for(node)) == sm.emit(node, config_for(node))


def test_special_characters_are_data(sagemaker_client):
    tmpl = "{{ messages }}: 'q' \"d\" # x\n- y"
    node = dataclasses.replace(serving(AWS), name="support-llm-special")
    reqs = requests_for(node, {"chat-template": tmpl, "served-model-name": "a: b"})
    env = reqs["CreateModel"]["PrimaryContainer"]["Environment"]
    assert env["OPTION_CHAT_TEMPLATE"] == tmpl and env["OPTION_SERVED_MODEL_NAME"] == "a: b"
    sagemaker_client.create_model(**reqs["CreateModel"])
    got = sagemaker_client.describe_model(ModelName=reqs["CreateModel"]["ModelName"])
    assert got["PrimaryContainer"]["Environment"]["OPTION_CHAT_TEMPLATE"] == tmpl


def test_check_reports_what_lmi_cannot_express():
    node = dataclasses.replace(serving(AWS), adapters=())
    warnings = sm.check(node, config_for(node))  # vLLM version inside LMI (replicas max is autoscaling now)
    assert [d.severity for d in warnings] == ["warning"] and "0.15.1" in warnings[0].message
    pinned = dataclasses.replace(node, engine_version=sm.LMI_VLLM_VERSION, replicas_max=1)
    assert sm.check(pinned, config_for(pinned)) == []
    bad_target = dataclasses.replace(AWS, role_arn=None, region="mars-1")
    bad = dataclasses.replace(node, target=bad_target, instance_type=None)
    cfg = config_for(bad, {"served-model-name": ["a", "b"], "dtype": "half"})
    errors = [d for d in sm.check(bad, cfg) if d.severity == "error"]
    messages = " | ".join(d.message for d in errors)
    assert len(errors) == 5
    assert "instance type" in messages and "role_arn" in messages and "mars-1" in messages
    assert "served-model-name" in messages and "dtype 'half'" in messages
    assert all(d.file == "serving/support-llm.yaml" for d in errors)


def test_kubernetes_target_is_not_required():
    # The endpoint emitter reads only region/role from the target.
    t = Target(name="x", backend="sagemaker", provider="aws", region="eu-west-1",
               role_arn="arn:aws:iam::123456789012:role/r", serving_platform="sagemaker")
    reqs = requests_for(serving(t))
    assert ".eu-west-1." in reqs["CreateModel"]["PrimaryContainer"]["Image"]
    assert sm.validate_requests(reqs) == []


# ---- LoRA adapters through LMI's adapters/ folder --------------------------------------------

TRAINED = Adapter("support-llm", "trained", "s3://acme-ml-prod-artifacts/prod/support-llm/adapter", None, 16,
                  "/opt/ml/model/adapters/support-llm", Source("serving/support-llm.yaml", 7, 5))
HUB = Adapter("topic-guard", "published", "nvidia/llama-3.1-nemoguard-8b-topic-control", "a" * 40, 8,
              "/opt/ml/model/adapters/topic-guard", Source("serving/support-llm.yaml", 8, 5))


def with_adapters(*adapters: Adapter):
    return dataclasses.replace(serving(AWS, env="prod"), adapters=adapters, adapter_root="/opt/ml/model/adapters")


def test_trained_adapter_reaches_lmi_through_the_model_directory(sagemaker_client):
    node = with_adapters(TRAINED, HUB)
    files = sm.emit(node, config_for(node, {"max-lora-rank": 16}))
    reqs = json.loads(files["endpoint.json"])
    assert sm.validate_requests(reqs) == []  # ModelDataSource is a shape botocore knows
    primary = reqs["CreateModel"]["PrimaryContainer"]
    source = primary["ModelDataSource"]["S3DataSource"]
    # Uncompressed prefix copied to /opt/ml/model, where LMI registers adapters/<name>/ at start-up.
    assert (source["S3DataType"], source["CompressionType"]) == ("S3Prefix", "None")
    prefix = source["S3Uri"]
    assert prefix.startswith("s3://acme-ml-prod-artifacts/prod/serving/support-llm/lmi-model-") and prefix.endswith("/")
    env = primary["Environment"]
    assert env["OPTION_ENABLE_LORA"] == "true" and env["OPTION_MAX_LORA_RANK"] == "16"
    assert env["HF_MODEL_ID"] == node.model_uri  # the base still comes from the Hub
    # The copy plan: the trained adapter only (the Hub one is a warning, below).
    assert json.loads(files[sm.ADAPTERS_FILE]) == {"Copies": [{
        "Adapter": "support-llm", "Source": TRAINED.uri + "/", "Destination": f"{prefix}adapters/support-llm/"}]}
    sagemaker_client.create_model(**reqs["CreateModel"])
    got = sagemaker_client.describe_model(ModelName=reqs["CreateModel"]["ModelName"])["PrimaryContainer"]
    assert got["ModelDataSource"] == primary["ModelDataSource"]
    assert sm.emit(node, config_for(node)) == sm.emit(node, config_for(node))  # byte-identical


def test_another_adapter_set_is_another_prefix_and_model():
    one = requests_for(with_adapters(TRAINED))["CreateModel"]
    other = dataclasses.replace(TRAINED, name="billing", uri="s3://acme-ml-prod-artifacts/prod/billing/adapter")
    two = requests_for(with_adapters(TRAINED, other))["CreateModel"]

    def uri(model: dict) -> str:
        return model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"]

    assert uri(one) != uri(two) and one["ModelName"] != two["ModelName"]
    # No stageable adapter: no model directory, no copy plan (the base alone, as before).
    hub_only = with_adapters(HUB)
    assert "ModelDataSource" not in requests_for(hub_only)["CreateModel"]["PrimaryContainer"]
    assert sm.ADAPTERS_FILE not in sm.emit(hub_only, config_for(hub_only))


def test_adapters_lmi_cannot_load_are_warnings_at_their_line():
    gcs = dataclasses.replace(TRAINED, uri="gs://elsewhere/prod/support-llm/adapter")
    for adapters, names in (((TRAINED,), []), ((TRAINED, HUB), ["topic-guard"]), ((gcs, HUB), ["support-llm", "topic-guard"])):
        diags = sm.adapter_checks(with_adapters(*adapters))
        assert [d.message.split("'")[1] for d in diags] == names
        assert all(d.severity == "warning" and d.pos.line in (7, 8) for d in diags)
    (hub,) = sm.adapter_checks(with_adapters(HUB))
    assert f"{HUB.uri}@{HUB.revision}" in hub.message and "adapters/" in hub.message
