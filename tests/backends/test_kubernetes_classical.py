"""MLServer on Kubernetes and KServe for classical models.

The Deployment/Service/ConfigMap/HPA validate against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict); the InferenceService against KServe's own CRD schema (the copy
in tests/fixtures/kserve), with `modelFormat` sklearn|xgboost|lightgbm and protocol v2.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from specops.backends import kserve
from specops.backends import kubernetes as k8s
from specops.ir import Serving, Source
from tests.fixtures.ir_samples import GCP

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def node(**kw) -> Serving:
    base = dict(
        name="fare-api", env="staging", target=GCP, model="nyc-taxi-model", model_uri="registry://nyc-taxi-model",
        model_config=None, engine_version="1.7.1", engine_args={}, accelerator="", accelerator_count=0,
        replicas_min=1, replicas_max=3, image="seldonio/mlserver:1.7.1", labels={"team": "mobility"},
        source=Source("serving/endpoint.yaml", 1, 1), engine="mlserver", runtime="sklearn",
        features=(("distance", "FP64"), ("vendor", "INT64")), registry="nyc-taxi-model",
        model_artifact_uri="gs://acme-ml-artifacts/staging/nyc-taxi-model/model", request_timeout_ms=2500,
        max_concurrency=4, autoscale_metric="concurrency", autoscale_target=4, cpu_request="1",
        memory_limit="2Gi", probes={"liveness": {"periodSeconds": 7}}, model_revision="pipeline-0123456789abcdef")
    base.update(kw)
    return Serving(**base)


@pytest.fixture(scope="module")
def crd():
    return json.loads((FIXTURES / "kserve" / "inferenceservice-v1beta1.schema.json").read_text())["openAPIV3Schema"]


@pytest.mark.parametrize("runtime", ["sklearn", "xgboost", "lightgbm"])
def test_inferenceservice_validates_against_the_kserve_crd(crd, runtime):
    n = node(runtime=runtime)
    doc = yaml.safe_load(kserve.emit(n)["inferenceservice.yaml"])
    assert kserve.validate_inferenceservice(doc, crd) == []
    p = doc["spec"]["predictor"]
    assert p["model"]["modelFormat"] == {"name": runtime} and p["model"]["protocolVersion"] == "v2"
    assert p["model"]["storageUri"] == n.model_artifact_uri
    assert (p["scaleMetric"], p["scaleTarget"], p["containerConcurrency"], p["timeout"]) == ("concurrency", 4, 4, 3)
    assert p["model"]["resources"] == {"limits": {"memory": "2Gi"}, "requests": {"cpu": "1"}}  # no GPU keys
    assert p["model"]["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert p["annotations"] == {"specops.dev/model-revision": "pipeline-0123456789abcdef"}
    assert kserve.check(n) == []


def test_token_auth_is_kserves_switch_and_key_auth_is_refused(crd):
    doc = yaml.safe_load(kserve.emit(node(auth_mode="token"))["inferenceservice.yaml"])
    assert doc["metadata"]["annotations"] == {"serving.kserve.io/enable-auth": "true"}
    assert kserve.validate_inferenceservice(doc, crd) == []
    msgs = [d.message for d in kserve.check(node(auth_mode="key"))]
    assert any("key authentication" in m for m in msgs)


def test_kubernetes_manifests_validate_and_fetch_the_model():
    n = node(autoscale_metric="cpu", autoscale_target=65)
    files = k8s.emit(n)
    assert sorted(files) == ["configmap.yaml", "deployment.yaml", "hpa.yaml", "service.yaml"]
    assert k8s.validate_manifests(files) == []
    dep = yaml.safe_load(files["deployment.yaml"])
    pod = dep["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["gcloud", "storage", "rsync", "--recursive", n.model_artifact_uri, "/mnt/models"]
    (c,) = pod["containers"]
    assert c["command"] == ["mlserver", "start", "/etc/mlserver"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert c["livenessProbe"]["periodSeconds"] == 7
    assert "nvidia.com/gpu" not in json.dumps(c["resources"])
    cm = yaml.safe_load(files["configmap.yaml"])
    assert json.loads(cm["data"]["model-settings.json"])["parameters"]["uri"] == "/mnt/models/model.joblib"
    hpa = yaml.safe_load(files["hpa.yaml"])
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 65


def test_what_a_deployment_cannot_carry_is_said_at_the_field():
    n = node(field_sources={"requestSettings": Source("serving/endpoint.yaml", 9, 3),
                            "replicas": Source("serving/endpoint.yaml", 7, 3)})
    diags = {d.message: d for d in k8s.check(n)}
    (timeout,) = [d for m, d in diags.items() if "request timeout" in m]
    assert timeout.severity == "warning" and timeout.pos.line == 9
    (metric,) = [d for m, d in diags.items() if "cpu only" in m]
    assert metric.severity == "error" and metric.pos.line == 7
    local = k8s.check(dataclasses.replace(n, model_artifact_uri="file://.specops/artifacts/staging/m/model"))
    assert any("no pod can read" in d.message for d in local)
