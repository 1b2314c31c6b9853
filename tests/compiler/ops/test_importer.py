"""`import_resource`: adopt SageMaker pipelines and endpoints made outside specops into state.

Live objects are made with plain boto3 on moto's real server (127.0.0.1); the state is the
real local state store in a temp directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from specops.backends import sagemaker as sm
from specops.backends.provider import make_provider
from specops.ops.importer import import_resource
from specops.state import LocalStore, StateError
from tests.backends.test_sagemaker_provider import endpoint_desired, pipeline_desired
from tests.fixtures.ir_samples import AWS, churn_pipeline, serving
from tests.moto_server import aws_test_env, client, moto_server


@pytest.fixture(scope="module")
def moto_endpoint():
    with aws_test_env(), moto_server() as endpoint:
        client("s3", endpoint).create_bucket(Bucket="acme-ml-prod-artifacts")
        yield endpoint


def test_import_pipeline_made_by_hand_then_plan_and_apply_adopt_it(moto_endpoint, tmp_path):
    c = client("sagemaker", moto_endpoint)
    text = json.dumps({"Version": "2020-12-01", "Metadata": {}, "Parameters": [], "Steps": []})
    arn = c.create_pipeline(PipelineName="legacy-churn", PipelineDefinition=text, RoleArn=AWS.role_arn,
                            ClientRequestToken="x" * 40)["PipelineArn"]
    store = LocalStore(tmp_path, "prod")
    opts = {"endpoint_url": moto_endpoint}
    entry = import_resource(store, "sagemaker_pipeline.churn-classifier", arn, env="prod", target=AWS,
                            root=tmp_path, options=opts)
    assert entry.ids == {"arn": arn, "name": "legacy-churn"}
    assert entry.content_hash == hashlib.sha256(text.encode()).hexdigest()
    assert entry.attributes == json.loads(text) and entry.outputs["imported"] is True
    saved = store.read()
    assert saved is not None and saved.serial == 1 and saved.resources["sagemaker_pipeline.churn-classifier"] == entry

    # plan: live still matches what was imported (no drift), the spec differs (update)
    d = pipeline_desired(churn_pipeline(AWS, "prod"))
    p = make_provider("sagemaker_pipeline", env="prod", target=AWS, root=tmp_path, options=opts)
    assert p.read(d, entry).content_hash == entry.content_hash != d.content_hash
    ids, out = p.apply(d, entry)  # updates the adopted pipeline in place, under its own name
    assert out["action"] == "update" and ids["arn"] == arn
    assert c.describe_pipeline(PipelineName="legacy-churn")["PipelineDefinition"] == \
        sm.emit(churn_pipeline(AWS, "prod"))["definition.json"].decode()

    with pytest.raises(StateError, match="already in the state"):
        import_resource(store, "sagemaker_pipeline.churn-classifier", "legacy-churn", env="prod", target=AWS,
                        root=tmp_path, options=opts)
    assert store.read().serial == 1


def test_import_endpoint_by_name(moto_endpoint, tmp_path):
    node = serving(AWS, env="prod")
    reqs = endpoint_desired(node).attributes
    c = client("sagemaker", moto_endpoint)
    c.create_model(**reqs["CreateModel"])
    c.create_endpoint_config(**reqs["CreateEndpointConfig"])
    c.create_endpoint(**reqs["CreateEndpoint"])
    store = LocalStore(tmp_path, "prod")
    entry = import_resource(store, "sagemaker_endpoint.support-llm", "support-llm-prod", env="prod", target=AWS,
                            root=tmp_path, options={"endpoint_url": moto_endpoint})
    assert entry.ids["endpoint"] == "support-llm-prod"
    assert entry.ids["endpoint_config"] == reqs["CreateEndpointConfig"]["EndpointConfigName"]
    assert entry.ids["model"] == reqs["CreateModel"]["ModelName"]
    assert entry.attributes["CreateModel"]["PrimaryContainer"]["Image"] == reqs["CreateModel"]["PrimaryContainer"]["Image"]
    assert entry.content_hash  # a hash of the running config: specops never tagged it


@pytest.mark.parametrize("address, live_id, message", [
    ("kfp_pipeline.x", "x", "importable addresses"),
    ("sagemaker_pipeline", "x", "importable addresses"),
    ("sagemaker_pipeline.x", "", "name or ARN"),
    ("sagemaker_pipeline.x", "no-such-pipeline", "no SageMaker pipeline 'no-such-pipeline'"),
    ("sagemaker_endpoint.x", "arn:aws:sagemaker:us-east-1:1:pipeline/p", "not a SageMaker endpoint ARN"),
])
def test_import_errors_are_one_line_and_write_nothing(moto_endpoint, tmp_path, address, live_id, message):
    store = LocalStore(tmp_path, "prod")
    with pytest.raises(StateError, match=message) as e:
        import_resource(store, address, live_id, env="prod", target=AWS, root=Path(tmp_path),
                        options={"endpoint_url": moto_endpoint})
    assert "\n" not in str(e.value)
    assert store.read() is None
