"""KServe `serving.kserve.io/v1beta1` InferenceService for a vLLM-served model.

Emits `<name>/inferenceservice.yaml`: the predictor uses KServe's Hugging Face serving runtime
(`modelFormat: huggingface`), whose server parses vLLM's own serve flags (its parser is vLLM's
`make_arg_parser` over a `FlexibleArgumentParser`, kserve/kserve
python/huggingfaceserver/huggingfaceserver/__main__.py). So the serve config becomes argv:

- `model` -> `--model_id=<hf id>`, or `storageUri` for `gs://`, `s3://`, `hf://`, `pvc://`,
  `oci://`, `https://` (KServe's storage initializer downloads it to /mnt/models);
- `served-model-name` -> `--model_name` (KServe's name for the served model, default node.name);
- `revision`/`tokenizer-revision` -> `--model_revision`/`--tokenizer_revision` (KServe's own
  flags; it overwrites vLLM's `--revision` with `--model_revision`);
- `host`/`port` are dropped: KServe owns the container port (8080);
- every other key -> a vLLM flag, by `vllm serve --config` rules (see kubernetes.config_to_argv).

GPU requests = limits, GPU node selector and toleration, `/dev/shm` in memory, min/max
replicas, and `canaryTrafficPercent` when the node has a canary. Structured emission only.
"""

from __future__ import annotations

from typing import Any

from specops.backends import crd
from specops.backends import kubernetes as k8s
from specops.backends import mlserver
from specops.diagnostics import Diagnostic
from specops.ir import Serving

FORMAT = "KServe serving.kserve.io/v1beta1 InferenceService (huggingface runtime, vLLM backend)"
NAME = "kserve"
ARTIFACT_BACKEND = "kserve"
RESOURCE_TYPE = "k8s_manifests"
PROVIDER = "specops.backends.gitops_provider"

_STORAGE_SCHEMES = ("gs://", "s3://", "hf://", "pvc://", "oci://", "https://", "http://")
# Keys the InferenceService expresses itself rather than as vLLM flags.
_OWNED_KEYS = ("model", "served-model-name", "host", "port", "revision", "tokenizer-revision")
# KServe's server defines its own revision flags and overwrites vLLM's `revision` with
# `--model_revision` (huggingfaceserver/__main__.py: `args.revision = args.model_revision`),
# so the pin must travel under KServe's names.
_KSERVE_FLAGS = {"revision": "model_revision", "tokenizer-revision": "tokenizer_revision"}


KSERVE_PORT = 8080  # the model server's port in KServe's Hugging Face runtime
# Adapters are fetched by init containers into this shared emptyDir (KServe's storage
# initializer handles only the predictor's one storageUri).
ADAPTERS_VOLUME = "adapters"


def check(node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]:
    out = (k8s.common_checks(node, "kserve") + k8s.adapter_checks(node, "kserve") + k8s.env_checks(node, "kserve")
           + k8s.helm_only_checks(node, "kserve"))
    if "modelCache" in node.field_sources:
        file, pos = k8s._source_pos_of(node.field_sources["modelCache"])
        out.append(Diagnostic("error", "unsupported",
                              "kserve: the weights go through KServe's storage initializer or the Hub, not a "
                              "model-cache volume; drop `modelCache` on this platform", file, pos))
    if node.engine == "mlserver":
        # KServe carries request limits and autoscaling targets, and bearer-token auth.
        out += k8s.mlserver_checks(node, "kserve", requests=True, auth_modes=("token",))
    if not 0 <= node.canary_percent <= 100:
        file, pos = k8s._source_pos(node)
        out.append(Diagnostic("error", "value",
                              f"kserve: canary percent must be 0..100 (got {node.canary_percent})", file, pos))
    return out


def _model_location(model: str) -> tuple[dict[str, Any], list[str]]:
    """(fields on the model spec, runtime args) that point the server at the weights."""
    if model.startswith(_STORAGE_SCHEMES):
        return {"storageUri": model}, []
    return {}, [f"--model_id={model}"]


def inferenceservice(node: Serving, serve_config_yaml: bytes) -> dict[str, Any]:
    config = k8s.load_serve_config(serve_config_yaml)
    model = str(config.get("model") or node.model_uri)
    location, model_args = _model_location(model)
    pins = [f"--{flag}={config[key]}" for key, flag in sorted(_KSERVE_FLAGS.items()) if config.get(key)]
    args = [f"--model_name={k8s.served_model_name(node, config)}", *model_args, *pins,
            *k8s.config_to_argv(config, skip=_OWNED_KEYS)]
    model_spec: dict[str, Any] = {
        "modelFormat": {"name": "huggingface"},
        "args": args,
        "env": [k8s.hf_token_env(node), *k8s.user_env(node)],
        "resources": k8s.pod_resources(node),
        "volumeMounts": [{"mountPath": "/dev/shm", "name": "shm"}],
        **location,
    }
    if "probes" in node.field_sources:
        # Only probes the spec writes: KServe's serverless mode (Knative) owns probing otherwise.
        model_spec.update(k8s.probes(node, KSERVE_PORT))
    if "image" in node.field_sources:
        # Only an image the spec names: the default serving image is vLLM's, not KServe's
        # Hugging Face server, which the runtime supplies.
        model_spec["image"] = node.image
    volumes = [k8s.shm_volume(node)]
    if node.adapters and node.adapter_root:
        mount = {"mountPath": node.adapter_root, "name": ADAPTERS_VOLUME}
        model_spec["volumeMounts"].append(mount)
        volumes.append({"emptyDir": {}, "name": ADAPTERS_VOLUME})
    inits = k8s.adapter_init_containers(node, [mount]) if node.adapters and node.adapter_root else []
    predictor: dict[str, Any] = {
        "minReplicas": node.replicas_min,
        "maxReplicas": node.replicas_max,
        "model": model_spec,
        "tolerations": k8s.tolerations(node),
        "volumes": sorted(volumes, key=lambda v: v["name"]),
    }
    if node.affinity:
        predictor["affinity"] = node.affinity
    if node.strategy:
        # Raw-deployment mode's Deployment strategy (the predictor's deploymentStrategy).
        predictor["deploymentStrategy"] = {"type": node.strategy}
    if inits:
        predictor["initContainers"] = inits
    selector = k8s.node_selector(node)
    if selector:
        predictor["nodeSelector"] = selector
    if node.canary_percent > 0:
        # KServe sends this share to the newest revision, the rest to the previous ready one.
        predictor["canaryTrafficPercent"] = node.canary_percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"labels": k8s.labels(node), "name": node.name, "namespace": node.target.namespace,
                     **({"annotations": k8s.annotations(node)} if node.gates else {})},
        "spec": {"predictor": predictor},
    }


def classical_inferenceservice(node: Serving) -> dict[str, Any]:
    """A classical model: KServe's own format runtime (sklearn / xgboost / lightgbm, which
    KServe serves with MLServer under protocol v2), the registered model from the artifact
    store through KServe's storage initializer, and the request and autoscaling settings."""
    model_spec: dict[str, Any] = {
        "modelFormat": {"name": node.runtime or "sklearn"},
        "protocolVersion": "v2",
        "resources": k8s.pod_resources(node),
        "storageUri": node.model_artifact_uri,
    }
    env = k8s.user_env(node)
    if env:
        model_spec["env"] = env
    if node.probes:
        model_spec.update(k8s.probes(node, KSERVE_PORT, k8s._MLSERVER_PROBES))
    predictor: dict[str, Any] = {"minReplicas": node.replicas_min, "maxReplicas": node.replicas_max,
                                 "model": model_spec}
    if node.autoscale_metric is not None:
        predictor["scaleMetric"] = node.autoscale_metric
        predictor["scaleTarget"] = node.autoscale_target
    if node.max_concurrency is not None:
        predictor["containerConcurrency"] = node.max_concurrency
    if node.request_timeout_ms is not None:
        predictor["timeout"] = -(-node.request_timeout_ms // 1000)  # whole seconds, rounded up
    for key, value in (("nodeSelector", dict(node.node_selector)), ("tolerations", [dict(t) for t in node.tolerations]),
                       ("affinity", node.affinity)):
        if value:
            predictor[key] = value
    if node.strategy:
        predictor["deploymentStrategy"] = {"type": node.strategy}
    if node.canary_percent > 0:
        predictor["canaryTrafficPercent"] = node.canary_percent
    metadata: dict[str, Any] = {"labels": k8s.labels(node), "name": node.name, "namespace": node.target.namespace}
    annotations = {}
    if node.auth_mode == "token":
        # KServe's own switch: the predictor accepts only requests with a valid bearer token.
        annotations["serving.kserve.io/enable-auth"] = "true"
    if node.model_revision:
        # A retrained model is a new revision: KServe rolls the predictor and fetches it again.
        predictor["annotations"] = {"specops.dev/model-revision": node.model_revision}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": metadata,
            "spec": {"predictor": predictor}}


def emit(node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
    """`{"<name>/inferenceservice.yaml": bytes}` for one Serving node."""
    if node.engine == "mlserver":
        return {"inferenceservice.yaml": k8s.dump_yaml(classical_inferenceservice(node))}
    if serve_config_yaml is None:
        serve_config_yaml = k8s.default_serve_config(node)
    return {"inferenceservice.yaml": k8s.dump_yaml(inferenceservice(node, serve_config_yaml))}


# ---- validation against KServe's CRD schema ----------------------------------------------------


def validate_inferenceservice(doc: dict[str, Any], crd_schema: dict[str, Any]) -> list[str]:
    """Errors of an InferenceService against KServe's CRD openAPIV3Schema (strict), all of them.

    `crd_schema` is the `openAPIV3Schema` of the v1beta1 version (tests load the copy in
    tests/fixtures/kserve/). `metadata` is ObjectMeta, which the CRD leaves open; only its
    name/namespace/labels/annotations are expected here.
    """
    return crd.errors(doc, crd_schema)
