"""SageMaker providers (sagemaker_pipeline, sagemaker_endpoint) against moto's real server.

moto's ThreadedMotoServer on 127.0.0.1 stands in for AWS (no account here), reached through
real boto3 clients. Throttling is injected by a small HTTP proxy in front of moto that answers
some requests with `ThrottlingException` (HTTP 400) or HTTP 503 before forwarding the rest,
so botocore's own retry handling (adaptive mode) is what has to converge.

Test double: moto 5.2.5 does not implement UpdateEndpoint (FACTS), so the endpoint update
path (an existing endpoint moved to a new hash-named config) runs against `_UpdateStub`, a
tiny wrapper around the moto client that performs `update_endpoint` by the documented
semantics; the same test also checks the clear error a backend without UpdateEndpoint gives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from specops.backends import sagemaker as sm
from specops.backends import sagemaker_endpoint as sme
from specops.backends import sagemaker_provider as sp
from specops.backends.provider import Desired, ProviderError, RetryableError, content_hash, make_provider
from specops.state import ResourceState
from tests.fixtures.ir_samples import AWS, churn_pipeline, serving
from tests.moto_server import aws_test_env, client, moto_server


@pytest.fixture(scope="module")
def moto_endpoint():
    with aws_test_env(), moto_server() as endpoint:
        client("s3", endpoint).create_bucket(Bucket="acme-ml-prod-artifacts")
        yield endpoint


def pipeline_desired(pipeline, prefix: str | None = None) -> Desired:
    prefix = prefix or f"{pipeline.env}/sagemaker/{pipeline.name}"
    files = {f"{prefix}/{k}": v for k, v in sm.emit(pipeline).items()}
    return Desired(
        address=f"sagemaker_pipeline.{pipeline.name}", type="sagemaker_pipeline", name=pipeline.name,
        env=pipeline.env, content_hash=content_hash(files), files=files,
        attributes=json.loads(files[f"{prefix}/definition.json"]), depends_on=(), target=pipeline.target,
        spec=f"Model/{pipeline.model}")


def endpoint_desired(node) -> Desired:
    cfg = yaml.safe_dump({"model": node.model_uri, **node.engine_args}, sort_keys=True).encode()
    files = {f"{node.env}/serving/{node.name}/{k}": v for k, v in sme.emit(node, cfg).items()}
    body = files[f"{node.env}/serving/{node.name}/endpoint.json"]
    return Desired(
        address=f"sagemaker_endpoint.{node.name}", type="sagemaker_endpoint", name=node.name, env=node.env,
        content_hash=content_hash(files), files=files, attributes=json.loads(body), depends_on=(),
        target=node.target, spec=f"ServingTarget/{node.name}")


def test_endpoint_stages_trained_adapters_into_lmi_model_directory(moto_endpoint):
    """adapters.json's copy plan runs on moto's S3 before CreateModel, once per model."""
    from specops.ir import Adapter

    uri = "s3://acme-ml-prod-artifacts/prod/support-llm/adapter"
    adapter = Adapter("support-llm", "trained", uri, None, 16, "/opt/ml/model/adapters/support-llm")
    node = dataclasses.replace(serving(AWS, env="prod"), name="lora-llm", adapters=(adapter,),
                               adapter_root="/opt/ml/model/adapters")
    d = endpoint_desired(node)
    p = make("sagemaker_endpoint", moto_endpoint)
    with pytest.raises(ProviderError, match="adapter 'support-llm' has nothing registered at"):
        p.apply(d, None)  # not trained yet: one line naming it, and no model created
    s3 = client("s3", moto_endpoint)
    for name, body in (("adapter_config.json", b'{"r": 16}'), ("adapter_model.safetensors", b"w" * 64)):
        s3.put_object(Bucket="acme-ml-prod-artifacts", Key=f"prod/support-llm/adapter/{name}", Body=body)
    ids, out = p.apply(d, None)
    assert out["model"] == "created" and out["adapters"] == "support-llm"
    prefix = d.attributes["CreateModel"]["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"]
    key = prefix[len("s3://acme-ml-prod-artifacts/"):]
    listed = s3.list_objects_v2(Bucket="acme-ml-prod-artifacts", Prefix=key)["Contents"]
    assert sorted(o["Key"][len(key):] for o in listed) == [
        "adapters/support-llm/adapter_config.json", "adapters/support-llm/adapter_model.safetensors"]
    got = client("sagemaker", moto_endpoint).describe_model(ModelName=ids["model"])["PrimaryContainer"]
    assert got["ModelDataSource"]["S3DataSource"]["S3Uri"] == prefix
    # A retrain under a live model does not rewrite the prefix its instances start from.
    s3.put_object(Bucket="acme-ml-prod-artifacts", Key="prod/support-llm/adapter/adapter_config.json", Body=b"{}")
    _, again = p.apply(d, None)
    assert again["model"] == "reused" and "adapters" not in again
    staged = s3.get_object(Bucket="acme-ml-prod-artifacts", Key=f"{key}adapters/support-llm/adapter_config.json")
    assert staged["Body"].read() == b'{"r": 16}'
    p.delete(state_of(d, ids, out))


def state_of(d: Desired, ids: dict, outputs: dict) -> ResourceState:
    return ResourceState(address=d.address, type=d.type, name=d.name, content_hash=d.content_hash, ids=ids,
                         outputs=outputs, attributes=d.attributes, depends_on=[])


def make(type_: str, endpoint: str, **options: Any):
    return make_provider(type_, env="prod", target=AWS, root=Path("."),
                         options={"endpoint_url": endpoint, **options})


# ---- sagemaker_pipeline ---------------------------------------------------------------------------


def test_pipeline_create_read_noop_update_delete(moto_endpoint):
    p = make("sagemaker_pipeline", moto_endpoint)
    assert p.TYPE == "sagemaker_pipeline"
    d = pipeline_desired(churn_pipeline(AWS, "prod", schedule="30 2 * * 1-5"))
    assert p.read(d, None).exists is False

    ids, out = p.apply(d, None)
    assert out["action"] == "create" and out["schedule"] == "create"
    assert ids["name"] == "churn-classifier-prod" and ids["arn"].endswith(":pipeline/churn-classifier-prod")
    live = p.read(d, None)
    assert live.exists and live.content_hash == d.content_hash
    assert live.attributes == d.attributes  # the parsed live definition, for field diffs
    c = client("sagemaker", moto_endpoint)
    tags = {t["Key"]: t["Value"] for t in c.list_tags(ResourceArn=ids["arn"])["Tags"]}
    assert tags[sp.RESOURCE_HASH_TAG] == d.content_hash
    assert tags[sp.CONTENT_HASH_TAG] == hashlib.sha256(sm.emit(churn_pipeline(AWS, "prod"))["definition.json"]).hexdigest()

    # params went to the content-addressed keys the definition reads
    s3 = client("s3", moto_endpoint)
    for uri, data in sm.uploads(churn_pipeline(AWS, "prod")).items():
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    sched = client("scheduler", moto_endpoint).get_schedule(Name="specops-churn-classifier-prod", GroupName="default")
    assert sched["Target"]["Arn"] == ids["arn"]

    # idempotent: a retry after a crash before state was written changes nothing
    ids2, out2 = p.apply(d, None)
    assert ids2 == ids and out2["action"] == "noop" and out2["schedule"] == "noop"

    d2 = pipeline_desired(churn_pipeline(AWS, "prod", threshold=">= 0.8", schedule="0 4 * * *"))
    cur = state_of(d, ids, out)
    assert p.read(d2, cur).content_hash == d.content_hash != d2.content_hash  # plan: update
    ids3, out3 = p.apply(d2, cur)
    assert out3["action"] == "update" and out3["schedule"] == "update" and ids3["arn"] == ids["arn"]
    assert p.read(d2, state_of(d2, ids3, out3)).content_hash == d2.content_hash

    p.delete(state_of(d2, ids3, out3))
    assert p.read(d2, None).exists is False
    p.delete(state_of(d2, ids3, out3))  # deleting what is gone is not an error


def test_pipeline_changed_behind_specops_back_is_drift(moto_endpoint):
    p = make("sagemaker_pipeline", moto_endpoint)
    pl = churn_pipeline(AWS, "prod")
    d = pipeline_desired(dataclasses.replace(pl, name="drifty"))
    ids, _ = p.apply(d, None)
    c = client("sagemaker", moto_endpoint)
    edited = json.loads(c.describe_pipeline(PipelineName=ids["name"])["PipelineDefinition"])
    edited["Steps"][0]["Name"] = "renamed-by-hand"
    c.update_pipeline(PipelineName=ids["name"], PipelineDefinition=json.dumps(edited), RoleArn=AWS.role_arn)

    live = p.read(d, None)
    assert live.exists and live.content_hash != d.content_hash
    assert live.content_hash == hashlib.sha256(json.dumps(edited).encode()).hexdigest()
    assert live.attributes["Steps"][0]["Name"] == "renamed-by-hand" != d.attributes["Steps"][0]["Name"]
    # apply reconciles it back
    assert p.apply(d, None)[1]["action"] == "update"
    assert p.read(d, None).content_hash == d.content_hash


def test_missing_role_and_bad_artifacts_are_one_line_errors(moto_endpoint):
    p = make("sagemaker_pipeline", moto_endpoint)
    d = pipeline_desired(churn_pipeline(AWS, "prod"))
    with pytest.raises(ProviderError, match="no role_arn"):
        p.apply(dataclasses.replace(d, target=dataclasses.replace(AWS, role_arn=None)), None)
    with pytest.raises(ProviderError, match="no definition.json"):
        p.apply(dataclasses.replace(d, files={}), None)
    bad = pipeline_desired(dataclasses.replace(churn_pipeline(AWS, "prod"), name="nobucket",
                                               artifact_root="s3://no-such-bucket/x"))
    with pytest.raises(ProviderError) as e:
        p.apply(bad, None)
    assert "NoSuchBucket" in str(e.value) and "\n" not in str(e.value)


# ---- throttling ------------------------------------------------------------------------------------


class _FlakyProxy:
    """HTTP proxy in front of moto failing chosen requests with throttling or 503."""

    def __init__(self, upstream: str, fail: Any):
        host, port = upstream.removeprefix("http://").split(":")
        self.fail, self.count, self.failed = fail, 0, []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.count += 1
                    kind = outer.fail(outer.count)
                    if kind:
                        outer.failed.append(kind)
                if kind == "throttle":
                    data = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                    self.send_response(400)
                    self.send_header("x-amzn-ErrorType", "ThrottlingException")
                elif kind == "503":
                    data = b'{"__type": "ServiceUnavailable", "message": "try later"}'
                    self.send_response(503)
                else:
                    conn = http.client.HTTPConnection(host, int(port), timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                            self.send_header(k, v)
                    conn.close()
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "_FlakyProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_apply_converges_through_throttling_and_503(moto_endpoint):
    # first two requests throttled, then every third request fails (alternating kinds)
    def fail(n: int) -> str | None:
        if n <= 2:
            return "throttle"
        return ("503" if n % 2 else "throttle") if n % 3 == 0 else None

    d = pipeline_desired(dataclasses.replace(churn_pipeline(AWS, "prod"), name="throttled"))
    with _FlakyProxy(moto_endpoint, fail) as proxy:
        p = make("sagemaker_pipeline", proxy.url, upload_params=False)
        ids, out = p.apply(d, None)
        assert out["action"] == "create"
        assert p.read(d, None).content_hash == d.content_hash
        assert "throttle" in proxy.failed and "503" in proxy.failed
    c = client("sagemaker", moto_endpoint)
    assert c.describe_pipeline(PipelineName=ids["name"])["PipelineArn"] == ids["arn"]
    assert len([x for x in c.list_pipelines()["PipelineSummaries"] if x["PipelineName"] == ids["name"]]) == 1


def test_throttling_that_never_ends_is_a_retryable_one_liner(moto_endpoint):
    d = pipeline_desired(dataclasses.replace(churn_pipeline(AWS, "prod"), name="always-throttled"))
    with _FlakyProxy(moto_endpoint, lambda n: "throttle") as proxy:
        p = make("sagemaker_pipeline", proxy.url, max_attempts=2, upload_params=False)
        with pytest.raises(RetryableError) as e:
            p.read(d, None)
        assert proxy.count == 2  # botocore made exactly max_attempts attempts
    assert "ThrottlingException" in str(e.value) and "\n" not in str(e.value)


# ---- sagemaker_endpoint ----------------------------------------------------------------------------


def test_endpoint_create_read_idempotent_delete(moto_endpoint):
    p = make("sagemaker_endpoint", moto_endpoint)
    node = serving(AWS, env="prod")  # ml.g4dn.xlarge: moto rejects g5/g6/p4d/p5
    d = endpoint_desired(node)
    assert p.read(d, None).exists is False
    ids, out = p.apply(d, None)
    assert out["model"] == out["endpoint_config"] == out["endpoint"] == "created"
    reqs = d.attributes
    assert ids["endpoint"] == "support-llm-prod" == reqs["CreateEndpoint"]["EndpointName"]
    assert ids["model"] == reqs["CreateModel"]["ModelName"]
    live = p.read(d, None)
    assert live.exists and live.content_hash == d.content_hash
    assert live.attributes["CreateEndpointConfig"]["EndpointConfigName"] == reqs["CreateEndpointConfig"]["EndpointConfigName"]
    assert live.attributes["CreateModel"]["PrimaryContainer"]["Environment"] == \
        reqs["CreateModel"]["PrimaryContainer"]["Environment"]

    ids2, out2 = p.apply(d, None)  # crash-and-retry: everything reused, nothing duplicated
    assert ids2 == ids and out2["model"] == out2["endpoint_config"] == "reused" and out2["endpoint"] == "noop"

    # drift: someone points the endpoint at another config behind specops's back
    c = client("sagemaker", moto_endpoint)
    c.create_endpoint_config(EndpointConfigName="by-hand", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": ids["model"], "InstanceType": "ml.g4dn.xlarge",
        "InitialInstanceCount": 1}])
    c.delete_endpoint(EndpointName=ids["endpoint"])
    c.create_endpoint(EndpointName=ids["endpoint"], EndpointConfigName="by-hand",
                      Tags=[{"Key": sp.RESOURCE_HASH_TAG, "Value": d.content_hash},
                            {"Key": sp.ENDPOINT_CONFIG_TAG, "Value": ids["endpoint_config"]}])
    drift = p.read(d, state_of(d, ids, out))
    assert drift.exists and drift.content_hash != d.content_hash
    assert drift.attributes["CreateEndpoint"]["EndpointConfigName"] == "by-hand"

    p.delete(state_of(d, ids, out))
    assert p.read(d, None).exists is False
    with pytest.raises(Exception):
        c.describe_model(ModelName=ids["model"])


class _UpdateStub:
    """Test double: the moto client plus `update_endpoint` (moto 5.2.5 lacks it), done by
    delete + create under the same name on moto, recording the call; or, with `missing`,
    answering like a backend without the operation."""

    def __init__(self, real: Any, missing: bool = False):
        self.real, self.missing, self.calls = real, missing, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_endpoint(self, **kwargs: Any) -> dict:
        from botocore.exceptions import ClientError

        self.calls.append(kwargs)
        if self.missing:
            raise ClientError({"Error": {"Code": "NotImplemented", "Message": "not yet"},
                               "ResponseMetadata": {"HTTPStatusCode": 501}}, "UpdateEndpoint")
        name = kwargs["EndpointName"]
        tags = self.real.list_tags(ResourceArn=self.real.describe_endpoint(EndpointName=name)["EndpointArn"])["Tags"]
        self.real.delete_endpoint(EndpointName=name)
        return self.real.create_endpoint(EndpointName=name, EndpointConfigName=kwargs["EndpointConfigName"], Tags=tags)


def test_endpoint_update_moves_to_new_config(moto_endpoint):
    node = dataclasses.replace(serving(AWS, env="prod"), name="upd-llm")
    d1 = endpoint_desired(node)
    d2 = endpoint_desired(dataclasses.replace(node, engine_args={**node.engine_args, "max-model-len": 4096}))
    c = client("sagemaker", moto_endpoint)

    broken = _UpdateStub(c, missing=True)
    p = make("sagemaker_endpoint", moto_endpoint, clients={"sagemaker": broken})
    ids1, out1 = p.apply(d1, None)
    with pytest.raises(ProviderError, match="does not implement UpdateEndpoint"):
        p.apply(d2, state_of(d1, ids1, out1))
    assert p.read(d1, None).content_hash == d1.content_hash  # still on the old config

    stub = _UpdateStub(c)
    p = make("sagemaker_endpoint", moto_endpoint, clients={"sagemaker": stub})
    ids2, out2 = p.apply(d2, state_of(d1, ids1, out1))
    assert out2["model"] == out2["endpoint_config"] == "reused"  # made by the failed attempt
    assert out2["endpoint"] == "updated" and ids2["endpoint"] == ids1["endpoint"]
    (call,) = stub.calls
    assert call["EndpointConfigName"] == d2.attributes["CreateEndpointConfig"]["EndpointConfigName"]
    assert call["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    live = p.read(d2, state_of(d2, ids2, out2))
    assert live.content_hash == d2.content_hash
    tags = {t["Key"]: t["Value"] for t in c.list_tags(ResourceArn=live.ids["arn"])["Tags"]}
    assert tags[sp.ENDPOINT_CONFIG_TAG] == ids2["endpoint_config"]


def test_unknown_type_is_refused():
    with pytest.raises(ProviderError):
        sp.provider("sagemaker_thing", env="prod", target=AWS, root=Path("."), options={})
