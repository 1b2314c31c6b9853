"""Kubernetes, KServe and production-stack Helm emission around vLLM.

Real validators throughout: kubernetes-validate's bundled Kubernetes OpenAPI schemas (strict),
KServe's own CRD openAPIV3Schema and the production-stack chart's own values.schema.json
(copies under tests/fixtures/, origin noted there).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from specops.backends import crd, helm_stack, kserve
from specops.backends import kubernetes as k8s
from specops.backends.kubernetes import emit as emit_kubernetes
from specops.backends.kubernetes import validate_manifests
from specops.backends.registry import serving_platform
from specops.ir import Target
from tests.fixtures.ir_samples import AWS, GCP, serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EKS = Target(name="eks", backend="kfp", provider="aws", region="us-east-1",
             serving_platform="kubernetes", namespace="serving")
ONPREM = Target(name="dc", backend="kfp", provider="onprem", serving_platform="kubernetes")


def config_for(node, extra: dict | None = None) -> bytes:
    """A serve config as backends/vllm.py would write it (plain YAML mapping)."""
    return yaml.safe_dump({"model": node.model_uri, **node.engine_args, **(extra or {})},
                          sort_keys=True).encode()


def docs(files: dict[str, bytes]) -> dict[str, dict]:
    return {path: yaml.safe_load(b) for path, b in files.items()}


@pytest.fixture(scope="module")
def isvc_schema() -> dict:
    return json.loads((FIXTURES / "kserve" / "inferenceservice-v1beta1.schema.json").read_text())["openAPIV3Schema"]


@pytest.fixture(scope="module")
def chart_schema() -> dict:
    return json.loads((FIXTURES / "production-stack" / "values.schema.json").read_text())


# ---- plain Kubernetes --------------------------------------------------------------------------


def test_emits_one_resource_per_file_and_hpa_only_when_autoscaling():
    node = serving(GCP, count=2)
    files = emit_kubernetes(node, config_for(node))
    assert sorted(files) == [f for f in
                             ("configmap.yaml", "deployment.yaml", "hpa.yaml", "pvc.yaml", "service.yaml")]
    kinds = {p: d["kind"] for p, d in docs(files).items()}
    assert kinds["hpa.yaml"] == "HorizontalPodAutoscaler"
    fixed = dataclasses.replace(node, replicas_min=2, replicas_max=2)
    assert "hpa.yaml" not in emit_kubernetes(fixed, config_for(fixed))


@pytest.mark.parametrize("target", [GCP, EKS, ONPREM], ids=["gke", "eks", "onprem"])
def test_manifests_validate_strictly_against_kubernetes_schemas(target):
    node = serving(target, count=4)
    assert validate_manifests(emit_kubernetes(node, config_for(node))) == []


def test_validation_catches_unknown_fields_and_wrong_types():
    node = serving(GCP)
    files = docs(emit_kubernetes(node, config_for(node)))
    dep = copy.deepcopy(files["deployment.yaml"])
    dep["spec"]["template"]["spec"]["containers"][0]["comand"] = ["vllm"]
    svc = copy.deepcopy(files["service.yaml"])
    svc["spec"]["ports"][0]["port"] = "eight thousand"
    errors = validate_manifests({"d.yaml": k8s.dump_yaml(dep), "s.yaml": k8s.dump_yaml(svc)})
    assert len(errors) == 2
    assert errors[0].startswith("d.yaml: Deployment/support-llm: ") and "comand" in errors[0]
    assert errors[1].startswith("s.yaml: Service/support-llm: spec.ports.0.port")


def test_validation_refuses_kinds_it_has_no_schema_for():
    # The InferenceService CRD is not among kubernetes-validate's schemas: never a silent pass.
    node = serving(GCP)
    errors = validate_manifests(kserve.emit(node, config_for(node)))
    assert len(errors) == 1 and "InferenceService" in errors[0]


def test_deployment_runs_vllm_with_gpu_shm_cache_probes_and_secret_token():
    node = serving(GCP, count=2)
    files = docs(emit_kubernetes(node, config_for(node)))
    dep = files["deployment.yaml"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "vllm/vllm-openai:v0.32.0"
    assert c["command"] == ["vllm", "serve"] and c["args"] == ["--config", "/etc/vllm/config.yaml"]
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 2}, "requests": {"nvidia.com/gpu": 2}}
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert vols["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory"}} and mounts["shm"] == "/dev/shm"
    assert vols["model-cache"]["persistentVolumeClaim"]["claimName"] == "support-llm-model-cache"
    env = {e["name"]: e for e in c["env"]}
    assert mounts["model-cache"] == env["HF_HOME"]["value"] == k8s.HF_CACHE_DIR
    assert "value" not in env["HF_TOKEN"]
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == k8s.HF_SECRET_NAME
    assert vols["vllm-config"]["configMap"]["name"] == files["configmap.yaml"]["metadata"]["name"]
    assert mounts["vllm-config"] == "/etc/vllm"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": 8000}
    assert c["ports"][0]["containerPort"] == 8000
    assert dep["spec"]["replicas"] == node.replicas_min
    svc = files["service.yaml"]
    assert svc["spec"]["ports"][0]["port"] == 8000
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert set(svc["spec"]["selector"].items()) <= set(pod and dep["spec"]["template"]["metadata"]["labels"].items())
    hpa = files["hpa.yaml"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    labels = dep["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "support-llm" and labels["app.kubernetes.io/managed-by"] == "specops"
    assert labels["team"] == "cx" and labels["specops.dev/env"] == "staging"


@pytest.mark.parametrize("target,gpu,expected", [
    (EKS, "H100", {"karpenter.k8s.aws/instance-gpu-name": "h100"}),
    (EKS, "A10G", {"karpenter.k8s.aws/instance-gpu-name": "a10g"}),
    (GCP, "A100-80GB", {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}),
    (ONPREM, "L4", {"nvidia.com/gpu.product": "NVIDIA-L4"}),
])
def test_node_selector_comes_from_the_provider_table(target, gpu, expected):
    node = serving(target, gpu=gpu)
    dep = yaml.safe_load(emit_kubernetes(node, config_for(node))["deployment.yaml"])
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == expected
    assert k8s.check(node) == []


def test_unknown_gpu_for_provider_is_an_error_at_the_spec():
    node = serving(GCP, gpu="A10G")  # an AWS-only part
    (diag,) = k8s.check(node)
    assert diag.severity == "error" and diag.code == "unsupported"
    assert diag.file == "serving/support-llm.yaml" and diag.pos.line == 1
    assert "A10G" in diag.message and "L4" in diag.notes[0]


def test_amd_gpu_uses_amd_resource():
    node = serving(ONPREM, gpu="MI300X", count=2)
    dep = yaml.safe_load(emit_kubernetes(node, config_for(node))["deployment.yaml"])
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {"amd.com/gpu": 2}


def test_port_from_serve_config_drives_container_probes_and_service():
    node = serving(GCP)
    files = docs(emit_kubernetes(node, config_for(node, {"port": 9000})))
    c = files["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert c["ports"][0]["containerPort"] == 9000 and c["readinessProbe"]["httpGet"]["port"] == 9000
    assert files["service.yaml"]["spec"]["ports"][0]["port"] == 9000


def test_single_replica_uses_recreate_and_read_write_once():
    node = dataclasses.replace(serving(GCP), replicas_min=1, replicas_max=1)
    files = docs(emit_kubernetes(node, config_for(node)))
    assert files["deployment.yaml"]["spec"]["strategy"] == {"type": "Recreate"}
    assert files["pvc.yaml"]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_config_change_rolls_pods():
    node = serving(GCP)
    a = docs(emit_kubernetes(node, config_for(node)))["deployment.yaml"]
    b = docs(emit_kubernetes(node, config_for(node, {"max-num-seqs": 64})))["deployment.yaml"]
    key = "specops.dev/config-sha256"
    assert a["spec"]["template"]["metadata"]["annotations"][key] != b["spec"]["template"]["metadata"]["annotations"][key]


# ---- byte identity and values as data ------------------------------------------------------------


def test_output_is_byte_identical_and_independent_of_dict_order():
    node = serving(GCP, count=2)
    shuffled = dataclasses.replace(node, engine_args=dict(reversed(list(node.engine_args.items()))),
                                   labels=dict(reversed(list(node.labels.items()))))
    for emit in (emit_kubernetes, kserve.emit, helm_stack.emit):
        assert emit(node, config_for(node)) == emit(shuffled, config_for(node))
    assert emit_kubernetes(node) == emit_kubernetes(shuffled)  # default serve config path


NASTY = {
    "chat-template": "{{ messages }}: 'quoted' \"double\" # not a comment\nkind: Secret\n---\n- item",
    "served-model-name": "support: llm",
    "tokenizer-mode": "yes",
    "hf-overrides": {"rope_scaling": {"type": "{{ x }}", "factor": 2.0}},
}


def test_yaml_special_characters_are_emitted_as_data():
    node = serving(GCP)
    config = config_for(node, NASTY)
    files = emit_kubernetes(node, config)
    cm = yaml.safe_load(files["configmap.yaml"])
    assert cm["data"]["config.yaml"].encode() == config  # the file, byte for byte
    assert yaml.safe_load(cm["data"]["config.yaml"])["chat-template"] == NASTY["chat-template"]
    assert all(len(list(yaml.safe_load_all(b))) == 1 for b in files.values())
    assert validate_manifests(files) == []

    isvc = yaml.safe_load(kserve.emit(node, config)["inferenceservice.yaml"])
    args = isvc["spec"]["predictor"]["model"]["args"]
    assert f"--chat-template={NASTY['chat-template']}" in args
    assert "--model_name=support: llm" in args and "--tokenizer-mode=yes" in args
    assert "--hf-overrides=" + json.dumps(NASTY["hf-overrides"], sort_keys=True, separators=(",", ":")) in args

    values = yaml.safe_load(helm_stack.emit(node, config)["values.yaml"])
    extra = values["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["extraArgs"]
    assert f"--chat-template={NASTY['chat-template']}" in extra and "--served-model-name=support: llm" in extra


def test_config_to_argv_follows_vllm_config_rules():
    argv = k8s.config_to_argv({"b-flag": False, "a-flag": True, "lst": [1, "x"], "num": -1,
                               "obj": {"k": 1}, "none": None, "model": "m"}, skip=("model",))
    assert argv == ["--a-flag", "--no-b-flag", "--lst", "1", "x", "--num=-1", '--obj={"k":1}']


# ---- KServe ------------------------------------------------------------------------------------


def test_inferenceservice_validates_against_kserve_crd(isvc_schema):
    node = serving(GCP, count=2)
    doc = yaml.safe_load(kserve.emit(node, config_for(node))["inferenceservice.yaml"])
    assert kserve.validate_inferenceservice(doc, isvc_schema) == []
    p = doc["spec"]["predictor"]
    assert p["model"]["modelFormat"] == {"name": "huggingface"}
    assert (p["minReplicas"], p["maxReplicas"], p["canaryTrafficPercent"]) == (1, 3, 10)
    assert p["model"]["resources"]["limits"] == {"nvidia.com/gpu": 2}
    assert p["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    args = p["model"]["args"]
    assert args[:2] == ["--model_name=support-llm", "--model_id=meta-llama/Llama-3.1-8B-Instruct"]
    assert "--tensor-parallel-size=2" in args and "--max-model-len=8192" in args
    assert "--enable-prefix-caching" in args and not any(a.startswith("--model=") for a in args)


def test_kserve_crd_validation_catches_mistakes(isvc_schema):
    node = serving(GCP)
    doc = yaml.safe_load(kserve.emit(node, config_for(node))["inferenceservice.yaml"])
    doc["spec"]["predictor"]["model"]["modelFormt"] = {"name": "huggingface"}
    doc["spec"]["predictor"]["minReplicas"] = "one"
    doc["spec"]["explainer"] = {}
    errors = kserve.validate_inferenceservice(doc, isvc_schema)
    assert len(errors) == 3
    assert any("modelFormt" in e for e in errors) and any("minReplicas" in e for e in errors)


def test_kserve_storage_uri_and_no_canary():
    node = dataclasses.replace(serving(GCP), model_uri="gs://acme-ml-models/support-llm/v3", canary_percent=0)
    p = yaml.safe_load(kserve.emit(node)["inferenceservice.yaml"])["spec"]["predictor"]
    assert p["model"]["storageUri"] == "gs://acme-ml-models/support-llm/v3"
    assert not any(a.startswith("--model_id") for a in p["model"]["args"])
    assert "canaryTrafficPercent" not in p


# ---- production-stack Helm values ----------------------------------------------------------------


def test_helm_values_validate_against_chart_schema(chart_schema):
    node = serving(GCP, count=2)
    values = yaml.safe_load(helm_stack.emit(node, config_for(node))["values.yaml"])
    # The chart's schema leaves objects open; closing them makes a misspelt key fail too.
    validator = jsonschema.Draft202012Validator(crd.strict_structural(chart_schema))
    assert [e.message for e in validator.iter_errors(values)] == []
    (spec,) = values["servingEngineSpec"]["modelSpec"]
    assert (spec["repository"], spec["tag"]) == ("vllm/vllm-openai", "v0.32.0")
    assert spec["modelURL"] == node.model_uri and spec["replicaCount"] == 1
    assert spec["vllmConfig"] == {"dtype": "bfloat16", "enablePrefixCaching": True, "gpuMemoryUtilization": 0.9,
                                  "maxLoras": 2, "maxModelLen": 8192, "tensorParallelSize": 2}
    assert spec["enableLoRA"] is True
    assert spec["resources"]["limits"] == {"nvidia.com/gpu": 2}
    assert spec["keda"] == {"enabled": True, "minReplicaCount": 1, "maxReplicaCount": 3}
    assert spec["hf_token"] == {"secretName": "hf-token", "secretKey": "token"}
    # The chart writes app.kubernetes.io/* itself; repeating them would render duplicate keys.
    assert not any(k.startswith("app.kubernetes.io/") for k in spec["labels"])
    bad = copy.deepcopy(values)
    bad["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["maxModelLength"] = 1
    bad["servingEngineSpec"]["modelSpec"][0]["replicaCount"] = "1"
    assert len(list(validator.iter_errors(bad))) == 2


def test_helm_values_put_other_flags_in_extra_args(chart_schema):
    node = serving(EKS, gpu="H100")
    config = config_for(node, {"runner": "generate", "enable-chunked-prefill": False, "port": 9000,
                               "speculative-config": {"method": "ngram"}})
    (spec,) = yaml.safe_load(helm_stack.emit(node, config)["values.yaml"])["servingEngineSpec"]["modelSpec"]
    assert spec["vllmConfig"]["enableChunkedPrefill"] is False
    assert spec["vllmConfig"]["extraArgs"] == ["--runner=generate", '--speculative-config={"method":"ngram"}']
    assert spec["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["h100"]}]}]
    jsonschema.validate({"servingEngineSpec": {"modelSpec": [spec]}}, chart_schema)


def test_helm_image_split_and_digest_check():
    assert helm_stack.split_image("registry:5000/org/vllm:v1") == ("registry:5000/org/vllm", "v1")
    assert helm_stack.split_image("registry:5000/org/vllm") == ("registry:5000/org/vllm", "latest")
    node = dataclasses.replace(serving(GCP), image="vllm/vllm-openai@sha256:" + "a" * 64)
    assert [d.code for d in helm_stack.check(node)] == ["unsupported"]


def test_registry_dispatches_on_serving_platform():
    def emit(node, config=None):
        return serving_platform(node.target.serving_platform).emit(node, config)

    def check(node, config=None):
        return serving_platform(node.target.serving_platform).check(node, config)

    gke = serving(GCP)  # serving_platform kserve
    assert list(emit(gke, config_for(gke))) == ["inferenceservice.yaml"]
    eks = serving(EKS)
    assert "deployment.yaml" in emit(eks, config_for(eks))
    helm = dataclasses.replace(eks, target=dataclasses.replace(EKS, serving_platform="helm"))
    assert list(emit(helm, config_for(helm))) == ["values.yaml"]
    assert list(emit(serving(AWS))) == ["endpoint.json"]
    local = dataclasses.replace(serving(GCP), target=dataclasses.replace(GCP, serving_platform="local"))
    assert emit(local) == {} and check(local) == []
    assert check(dataclasses.replace(gke, canary_percent=150))[0].code == "value"


def test_real_serve_config_from_vllm_backend_is_mounted_verbatim():
    from specops.backends.vllm import serve_config

    node = dataclasses.replace(serving(GCP), engine_args={**serving(GCP).engine_args,
                                                          "chat-template": NASTY["chat-template"]})
    config = serve_config(dict(node.engine_args), model=node.model_uri, version=node.engine_version)
    files = emit_kubernetes(node)  # default path: specops.backends.vllm.serve_config
    assert yaml.safe_load(files["configmap.yaml"])["data"]["config.yaml"].encode() == config
    assert validate_manifests(files) == []
    args = yaml.safe_load(kserve.emit(node)["inferenceservice.yaml"])["spec"]["predictor"]["model"]["args"]
    assert f"--chat-template={NASTY['chat-template']}" in args


def test_hf_token_comes_from_the_specs_secret_ref():
    """`hfToken: {secretRef: {name, key}}` in the spec names the Secret; without it the
    optional cluster convention is used."""
    import dataclasses

    node = dataclasses.replace(serving(), hf_token_secret=("llm-creds", "hf"))
    ref = k8s.hf_token_env(node)["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "llm-creds", "key": "hf", "optional": False}
    assert k8s.hf_token_env(serving())["valueFrom"]["secretKeyRef"]["optional"] is True
