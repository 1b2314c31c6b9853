"""Values for the vLLM production-stack Helm chart (vllm-project/production-stack, chart
`vllm-stack` 0.1.12, `helm/values.yaml` / `helm/values.schema.json`).

Emits `<name>/values.yaml` with one `servingEngineSpec.modelSpec[]` entry per Serving node. The
chart builds the `vllm serve <modelURL> --host 0.0.0.0 --port 8000 ...` command line itself
(templates/deployment-vllm-multi.yaml); from the serve config:

- typed `vllmConfig` fields where the chart has one: enable-prefix-caching ->
  enablePrefixCaching, enable-chunked-prefill -> enableChunkedPrefill, max-model-len ->
  maxModelLen, dtype, tensor-parallel-size -> tensorParallelSize, max-num-seqs -> maxNumSeqs,
  gpu-memory-utilization -> gpuMemoryUtilization, max-loras -> maxLoras, runner/convert (only
  the values the chart's schema enumerates);
- enable-lora -> modelSpec.enableLoRA, revision -> modelSpec.modelRevision, model -> modelURL;
- every other key -> `vllmConfig.extraArgs` (argv strings, `vllm serve --config` rules);
- host/port are dropped: the chart sets them from servingEngineSpec.containerPort.

The chart always passes `--enable-prefix-caching` or `--no-enable-prefix-caching` once
vllmConfig exists, so an unset value is written as `true`, vLLM's own default for generative
models. Resources go in the raw `resources` block (GPU requests = limits), which the chart
prefers over its requestCPU/requestMemory fields, so no CPU/memory numbers are invented.
`runtimeClassName: ""` keeps the chart's default "nvidia" RuntimeClass off clusters (GKE) that
have none; GPU access comes from the device plugin as in the plain manifests.
"""

from __future__ import annotations

from typing import Any

from specops.backends import kubernetes as k8s
from specops.diagnostics import Diagnostic
from specops.ir import Serving

FORMAT = "vllm-project/production-stack Helm values (chart vllm-stack 0.1.12, servingEngineSpec.modelSpec[])"
CHART_VERSION = "0.1.12"
NAME = "helm"
ARTIFACT_BACKEND = "helm"
RESOURCE_TYPE = "k8s_manifests"
PROVIDER = "specops.backends.gitops_provider"

# serve-config key -> vllmConfig key (the chart renders these as flags itself).
_TYPED: dict[str, str] = {
    "enable-prefix-caching": "enablePrefixCaching",
    "enable-chunked-prefill": "enableChunkedPrefill",
    "max-model-len": "maxModelLen",
    "dtype": "dtype",
    "tensor-parallel-size": "tensorParallelSize",
    "max-num-seqs": "maxNumSeqs",
    "gpu-memory-utilization": "gpuMemoryUtilization",
    "max-loras": "maxLoras",
}
# Values the chart's schema enumerates for these keys; anything else goes to extraArgs.
_ENUMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "runner": ("runner", "runner", ("auto", "pooling")),
    "convert": ("convert", "convert", ("token_embed", "embed", "token_classify", "classify", "score")),
}
_INT_KEYS = {"maxModelLen", "tensorParallelSize", "maxNumSeqs", "maxLoras"}
# lora-modules: the chart's LoRA controller loads adapters (loraAdapters) through vLLM's
# runtime LoRA API instead.
_DROPPED = ("host", "port", "lora-modules")
LORA_CONTROLLER_IMAGE = {"repository": "lmcache/lmstack-lora-controller", "tag": "latest"}


def check(node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]:
    if node.engine != "vllm":
        file, pos = k8s._source_pos(node)
        return [Diagnostic("error", "unsupported", "production-stack: the vLLM production-stack chart serves LLMs "
                           "with vLLM; serve a classical model on kubernetes, kserve or sagemaker", file, pos)]
    out = k8s.common_checks(node, "production-stack") + k8s.adapter_checks(node, "production-stack")
    fetched = [a for a in node.adapters if k8s.adapter_fetch_command(node, a) is not None]
    for a in fetched[1:]:
        file, pos = k8s._source_pos_of(a.source_pos)
        out.append(Diagnostic(
            "error", "unsupported",
            f"production-stack: the chart runs one init container per model, which fetches adapter "
            f"'{fetched[0].name}'; adapter '{a.name}' cannot be fetched too", file, pos))
    if "@" in node.image:
        file, pos = k8s._source_pos(node)
        out.append(Diagnostic(
            "error", "unsupported",
            f"production-stack: the chart writes the image as repository:tag and cannot pin a "
            f"digest ('{node.image}')", file, pos))
    return out


def chart_labels(node: Serving) -> dict[str, str]:
    """Our labels minus the ones the chart writes itself (app.kubernetes.io/*, model,
    helm-release-name): the chart appends these after its own, and a repeated key would make
    the rendered YAML invalid."""
    return {k: v for k, v in k8s.labels(node).items()
            if not k.startswith("app.kubernetes.io/") and k not in ("model", "helm-release-name")}


def split_image(image: str) -> tuple[str, str]:
    """'registry:5000/org/img:tag' -> ('registry:5000/org/img', 'tag'); no tag -> 'latest'."""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:]
    return image, "latest"


def model_spec(node: Serving, serve_config_yaml: bytes) -> dict[str, Any]:
    config = k8s.load_serve_config(serve_config_yaml)
    vllm_config: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    for key, value in config.items():
        if key in _DROPPED or key == "model" or value is None:
            continue
        if key in _TYPED and not isinstance(value, (list, dict)):
            field = _TYPED[key]
            vllm_config[field] = int(value) if field in _INT_KEYS and not isinstance(value, bool) else value
        elif key in _ENUMS and value in _ENUMS[key][2]:
            vllm_config[_ENUMS[key][1]] = value
        elif key == "enable-lora" and isinstance(value, bool):
            spec["enableLoRA"] = value
        elif key == "revision" and isinstance(value, str):
            spec["modelRevision"] = value
        else:
            rest[key] = value
    vllm_config.setdefault("enablePrefixCaching", True)
    extra = k8s.config_to_argv(rest)
    if extra:
        vllm_config["extraArgs"] = extra
    repository, tag = split_image(node.image)
    spec.update({
        "name": node.name,
        "repository": repository,
        "tag": tag,
        "modelURL": str(config.get("model") or node.model_uri),
        "replicaCount": node.replicas_min,
        **_resources(node),
        "runtimeClassName": "",
        "vllmConfig": vllm_config,
        "hf_token": dict(zip(("secretName", "secretKey"), k8s.hf_token_secret(node)[:2])),
        "labels": chart_labels(node),
        "podLabels": chart_labels(node),
        "tolerations": k8s.tolerations(node),
    })
    if node.gates:
        spec["annotations"] = k8s.annotations(node)
    if node.model_cache.enabled:
        # The chart mounts this claim at /data and points HF_HOME there (else /tmp).
        spec["pvcStorage"] = node.model_cache.size
        spec["pvcAccessMode"] = [k8s.cache_access_mode(node)]
        if node.model_cache.storage_class:
            spec["storageClass"] = node.model_cache.storage_class
    if node.shm_size:
        spec["shmSize"] = node.shm_size
        # The chart mounts /dev/shm only when tensorParallelSize is set: 1 is vLLM's default.
        vllm_config.setdefault("tensorParallelSize", 1)
    env = k8s.user_env(node)
    if node.adapters:
        spec["enableLoRA"] = True
        # The chart's LoRA controller loads adapters at runtime through this vLLM API.
        env = [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}, *env]
        fetched = [(a, f) for a in node.adapters if (f := k8s.adapter_fetch_command(node, a))]
        if fetched:
            # The chart's adapter sources carry no revision: adapters are pre-fetched (at their
            # pinned commit, or from the artifact store) onto the model's volume at /data.
            a, (image, argv) = fetched[0]
            spec["initContainer"] = {"name": "fetch-adapter", "image": image, "command": argv,
                                     "mountPvcStorage": True}
            if a.source == "published":
                spec["initContainer"]["env"] = [k8s.hf_token_env(node)]
    if env:
        spec["env"] = env
    if node.affinity:
        # The chart ignores nodeSelectorTerms when affinity is set: the GPU label goes in too.
        spec["affinity"] = node.affinity
    selector = k8s.node_selector(node)
    if selector and not node.affinity:
        spec["nodeSelectorTerms"] = [{"matchExpressions": [
            {"key": key, "operator": "In", "values": [value]} for key, value in sorted(selector.items())]}]
    if node.replicas_max > node.replicas_min:
        # KEDA ScaledObject; the chart's default trigger is vllm:num_requests_waiting > 5.
        spec["keda"] = {"enabled": True, "minReplicaCount": node.replicas_min,
                        "maxReplicaCount": node.replicas_max}
    return spec


def _resources(node: Serving) -> dict[str, Any]:
    """The chart's own request/limit keys when CPU and memory requests are given (what its
    tutorials write; its template requires both), else a raw `resources` block."""
    if node.cpu_request is None or node.memory_request is None:
        return {"resources": k8s.pod_resources(node)}
    out: dict[str, Any] = {"requestCPU": _number(node.cpu_request), "requestMemory": node.memory_request,
                           "requestGPU": node.accelerator_count}
    if node.cpu_limit is not None:
        out["limitCPU"] = _number(node.cpu_limit)
    if node.memory_limit is not None:
        out["limitMemory"] = node.memory_limit
    if k8s.gpu_resource_name(node) != "nvidia.com/gpu":
        out["requestGPUType"] = k8s.gpu_resource_name(node)
    return out


def _number(q: str) -> int | float | str:
    try:
        return int(q)
    except ValueError:
        try:
            return float(q)
        except ValueError:
            return q


def shared(node: Serving, port: int = 8000) -> dict[str, Any]:
    """servingEngineSpec keys the chart shares between all models of one values file."""
    out: dict[str, Any] = {}
    if node.strategy:
        out["strategy"] = {"type": node.strategy}
    for kind, fields in sorted(node.probes.items()):
        out[f"{kind}Probe"] = k8s.probe(kind, node, port)
    return out


def lora_adapters(node: Serving) -> list[dict[str, Any]]:
    """`loraAdapters[]` entries: each adapter, pre-fetched to its local path on the model's
    volume, loaded by the LoRA controller onto this model's pods."""
    return [{"name": f"{node.name}-{a.name}", "baseModel": node.name,
             "adapterSource": {"type": "local", "adapterName": a.name, "adapterPath": a.path},
             "loraAdapterDeploymentConfig": {"algorithm": "default", "replicas": max(1, node.replicas_min)}}
            for a in node.adapters]


def helm_values(node: Serving, serve_config_yaml: bytes) -> dict[str, Any]:
    values: dict[str, Any] = {"servingEngineSpec": {**shared(node), "modelSpec": [model_spec(node, serve_config_yaml)]}}
    if node.adapters:
        # The chart requires its LoRA controller for loraAdapters.
        values["loraAdapters"] = lora_adapters(node)
        values["loraController"] = {"enableLoraController": True, "image": dict(LORA_CONTROLLER_IMAGE)}
    return values


def combine(parts: list[tuple[Serving, dict[str, Any]]]) -> tuple[dict[str, Any], list[Diagnostic]]:
    """One release's values from its targets' (in name order): modelSpec and loraAdapters
    concatenated; servingEngineSpec-wide keys must agree, else an error at the second target's
    line (the field that disagrees, when it wrote one)."""
    out: dict[str, Any] = {"servingEngineSpec": {"modelSpec": []}}
    owner: dict[str, Serving] = {}
    diags: list[Diagnostic] = []
    for node, values in parts:
        engine = values["servingEngineSpec"]
        for key, value in engine.items():
            if key == "modelSpec":
                out["servingEngineSpec"]["modelSpec"].extend(value)
                continue
            have = out["servingEngineSpec"].get(key)
            if have is not None and have != value:
                field = "strategy" if key == "strategy" else "probes"
                file, pos = k8s._source_pos_of(node.field_sources.get(field) or node.source)
                diags.append(Diagnostic("error", "value",
                                        f"production-stack: servingEngineSpec.{key} is shared by the release's models, "
                                        f"and '{node.name}' disagrees with '{owner[key].name}'", file, pos))
                continue
            out["servingEngineSpec"][key] = value
            owner.setdefault(key, node)
        for key in ("loraAdapters",):
            if key in values:
                out.setdefault(key, []).extend(values[key])
        if "loraController" in values:
            out["loraController"] = values["loraController"]
    # Keys the chart shares but a target left to the default must agree too: a target with a
    # strategy and one without get one strategy, which is the second's disagreement.
    for node, values in parts:
        for key in owner:
            if key not in values["servingEngineSpec"] and node is not owner[key]:
                file, pos = k8s._source_pos_of(node.source)
                diags.append(Diagnostic("error", "value",
                                        f"production-stack: servingEngineSpec.{key} is shared by the release's models; "
                                        f"'{owner[key].name}' sets it and '{node.name}' does not", file, pos))
    return out, diags


def emit(node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
    """`{"values.yaml": bytes}` for `helm install <release> vllm/vllm-stack -f values.yaml`."""
    if node.engine != "vllm":
        return {}  # refused by check
    if serve_config_yaml is None:
        serve_config_yaml = k8s.default_serve_config(node)
    return {"values.yaml": values_bytes(helm_values(node, serve_config_yaml))}


def values_bytes(values: dict[str, Any]) -> bytes:
    return k8s.dump_yaml(values)
