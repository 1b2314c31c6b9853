"""Serving shape fields (resources, env, shm, model cache, placement, strategy, probes) reach the
Kubernetes Deployment, KServe's InferenceService and production-stack's values, which still
validate against the Kubernetes schemas, KServe's CRD and the chart's values.schema.json; SageMaker
carries literal env and the startup budget, and reports the rest at each field's line; two
targets of one production-stack release that disagree on a shared key are an error at the
second one's line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from specops.backends import crd, kserve, kubernetes
from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.checks.capacity import model_facts, plan, startup_probe

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

SHAPE = {
    "resources": {"requests": {"cpu": 10, "memory": "16Gi"}, "limits": {"cpu": 12, "memory": "32Gi"}},
    "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
            {"name": "API_KEY", "secretRef": {"name": "vllm-api", "key": "key"}}],
    "shmSize": "4Gi",
    "modelCache": {"size": "50Gi", "accessMode": "ReadWriteOnce", "storageClass": "premium-rwo"},
    "placement": {"nodeSelector": {"kubernetes.io/hostname": "gpu-node-02"},
                  "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}]},
    "strategy": "Recreate",
    "probes": {"startup": {"initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 90}},
}


def make_repo(tmp_path: Path, platform: str, shape: dict, extra: str = "") -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    st = repo / "serving" / "support-llm.yaml"
    doc = yaml.safe_load(st.read_text())
    doc["spec"].update(shape)
    doc["spec"]["platform"] = platform
    doc["spec"]["adapters"] = []
    st.write_text(yaml.safe_dump(doc, sort_keys=False) + extra)
    return repo


def build(repo: Path, env: str = "staging"):
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    return compile_repo(resolved, [env])


def test_kubernetes_deployment_carries_the_shape_and_validates(tmp_path: Path) -> None:
    b = build(make_repo(tmp_path, "kubernetes", SHAPE))
    assert not b.diagnostics.has_errors
    files = {p.rsplit("/", 1)[1]: d for p, d in b.files().items() if "/serving/support-llm/" in p}
    assert kubernetes.validate_manifests({k: v for k, v in files.items() if k not in ("vllm.yaml", "capacity.json")}) == []
    dep = yaml.safe_load(files["deployment.yaml"])
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"] == {"requests": {"nvidia.com/gpu": 1, "cpu": "10", "memory": "16Gi"},
                              "limits": {"nvidia.com/gpu": 1, "cpu": "12", "memory": "32Gi"}}
    assert {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"} in c["env"]
    assert {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"key": "key", "name": "vllm-api"}}} in c["env"]
    assert {"emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}, "name": "shm"} in pod["volumes"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", "kubernetes.io/hostname": "gpu-node-02"}
    assert {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"} in pod["tolerations"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert c["startupProbe"] == {"failureThreshold": 90, "httpGet": {"path": "/health", "port": 8000},
                                 "initialDelaySeconds": 30, "periodSeconds": 10}
    pvc = yaml.safe_load(files["pvc.yaml"])["spec"]
    assert pvc == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}},
                   "storageClassName": "premium-rwo"}


def test_no_model_cache_means_no_claim(tmp_path: Path) -> None:
    b = build(make_repo(tmp_path, "kubernetes", {"modelCache": {"enabled": False}}))
    assert not any(p.endswith("pvc.yaml") for p in b.files())
    pod = yaml.safe_load(b.files()["staging/serving/support-llm/deployment.yaml"])["spec"]["template"]["spec"]
    assert {"emptyDir": {}, "name": "model-cache"} in pod["volumes"]


def test_several_gpus_per_replica_default_to_recreate(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "kubernetes", {"accelerator": {"type": "L4", "count": 2}, "replicas": {"min": 2, "max": 4}})
    dep = yaml.safe_load(build(repo).files()["staging/serving/support-llm/deployment.yaml"])
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_kserve_carries_the_shape_and_refuses_a_model_cache(tmp_path: Path) -> None:
    shape = {k: v for k, v in SHAPE.items() if k != "modelCache"}
    b = build(make_repo(tmp_path, "kserve", shape))
    assert not b.diagnostics.has_errors
    isvc = yaml.safe_load(b.files()["staging/serving/support-llm/inferenceservice.yaml"])
    schema = json.loads((FIXTURES / "kserve" / "inferenceservice-v1beta1.schema.json").read_text())["openAPIV3Schema"]
    assert kserve.validate_inferenceservice(isvc, schema) == []
    pred = isvc["spec"]["predictor"]
    assert pred["deploymentStrategy"] == {"type": "Recreate"}
    assert pred["model"]["resources"]["requests"]["memory"] == "16Gi"
    assert pred["model"]["startupProbe"]["httpGet"]["port"] == 8080
    assert pred["nodeSelector"]["kubernetes.io/hostname"] == "gpu-node-02"
    b = build(make_repo(tmp_path / "2", "kserve", SHAPE))
    errs = [d for d in b.diagnostics.sorted() if d.severity == "error"]
    assert len(errs) == 1 and "modelCache" in errs[0].message


def test_production_stack_values_carry_the_shape_in_the_charts_keys(tmp_path: Path) -> None:
    b = build(make_repo(tmp_path, "helm", SHAPE))
    values = yaml.safe_load(b.files()["staging/serving/support-llm/values.yaml"])
    schema = json.loads((FIXTURES / "production-stack" / "values.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(crd.strict_structural(schema))
    assert [e.message for e in validator.iter_errors(values)] == []
    spec = values["servingEngineSpec"]["modelSpec"][0]
    assert (spec["requestCPU"], spec["requestMemory"], spec["requestGPU"]) == (10, "16Gi", 1)
    assert (spec["limitCPU"], spec["limitMemory"]) == (12, "32Gi")
    assert (spec["pvcStorage"], spec["pvcAccessMode"], spec["storageClass"]) == ("50Gi", ["ReadWriteOnce"], "premium-rwo")
    assert spec["shmSize"] == "4Gi" and spec["vllmConfig"]["tensorParallelSize"] == 1  # the chart mounts shm only then
    assert {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"key": "key", "name": "vllm-api"}}} in spec["env"]
    assert values["servingEngineSpec"]["strategy"] == {"type": "Recreate"}
    assert values["servingEngineSpec"]["startupProbe"]["failureThreshold"] == 90


def test_sagemaker_carries_env_and_startup_budget_and_reports_the_rest(tmp_path: Path) -> None:
    shape = {**SHAPE, "env": [SHAPE["env"][0]]}
    b = build(make_repo(tmp_path, "sagemaker", shape), "prod")
    req = json.loads(b.files()["prod/serving/support-llm/endpoint.json"])
    assert req["CreateModel"]["PrimaryContainer"]["Environment"]["VLLM_LOGGING_LEVEL"] == "DEBUG"
    assert req["CreateEndpointConfig"]["ProductionVariants"][0]["ContainerStartupHealthCheckTimeoutInSeconds"] == 930
    reported = {d.message.split("`")[1] for d in b.diagnostics.sorted() if "is not carried" in d.message and "`" in d.message}
    assert reported == {"resources", "shmSize", "modelCache", "placement", "strategy"}
    lines = (tmp_path / "repo/serving/support-llm.yaml").read_text().splitlines()
    for d in b.diagnostics.sorted():
        if "is not carried" in d.message and "`" in d.message:
            assert lines[d.pos.line - 1].lstrip().startswith(d.message.split("`")[1])


RELEASE_MATE = """---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {name: support-llm-b}
environments: [staging]
spec:
  model: support-llm
  platform: helm
  release: stack
  engine: {args: {max-model-len: 4096}}
  accelerator: {type: L4}
  gates: [support-quality]
  strategy: RollingUpdate
"""


def test_production_stack_release_shares_one_values_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "helm", {"release": "stack", "strategy": "RollingUpdate"},
                     RELEASE_MATE)
    b = build(repo)
    assert not b.diagnostics.has_errors
    values = yaml.safe_load(b.files()["staging/serving/stack/values.yaml"])
    assert [m["name"] for m in values["servingEngineSpec"]["modelSpec"]] == ["support-llm", "support-llm-b"]
    assert values["servingEngineSpec"]["strategy"] == {"type": "RollingUpdate"}


def test_release_mates_that_disagree_on_a_shared_key_are_an_error_at_the_second(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "helm", {"release": "stack", "strategy": "Recreate"}, RELEASE_MATE)
    b = build(repo)
    errs = [d for d in b.diagnostics.sorted() if d.severity == "error"]
    assert len(errs) == 1 and "support-llm-b" in errs[0].message and "strategy" in errs[0].message
    lines = (repo / "serving" / "support-llm.yaml").read_text().splitlines()
    assert lines[errs[0].pos.line - 1].strip() == "strategy: RollingUpdate"


def test_startup_probe_suits_the_models_size(tmp_path: Path) -> None:
    """Without a startup probe in the spec, the server gets 10 minutes plus one per 4 GiB of
    weights: an 8B model in bf16 (~15 GiB) gets 14 minutes; the spec's own probe wins."""
    dep = yaml.safe_load(build(make_repo(tmp_path, "kubernetes", {})).files()["staging/serving/support-llm/deployment.yaml"])
    probe = dep["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (10, 84)
    configs = ROOT / "tests" / "fixtures" / "model_configs"
    small = startup_probe(plan(model_facts(configs / "llama-3-8b"), gpu="H100"))
    large = startup_probe(plan(model_facts(configs / "llama-3-70b"), gpu="H100", count=4))
    assert large["failureThreshold"] > 2 * small["failureThreshold"]
