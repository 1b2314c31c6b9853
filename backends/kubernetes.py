"""Plain Kubernetes manifests around a vLLM server (apps/v1, v1, autoscaling/v2).

Emits, per Serving node, one resource per file under `<name>/`:

- `configmap.yaml`   v1 ConfigMap holding the `vllm serve --config` YAML (key `config.yaml`)
- `deployment.yaml`  apps/v1 Deployment: `vllm serve --config /etc/vllm/config.yaml` (argv list,
                     no shell), `nvidia.com/gpu` requests = limits = accelerator_count, a node
                     selector for the GPU type per cloud, `/dev/shm` in memory, the model cache
                     PVC at the Hugging Face cache dir, `/health` probes, HF token from a Secret
- `service.yaml`     v1 Service, ClusterIP, the vLLM port (8000 unless the config says otherwise)
- `pvc.yaml`         v1 PersistentVolumeClaim for the Hugging Face cache
- `hpa.yaml`         autoscaling/v2 HorizontalPodAutoscaler, only when replicas_max > replicas_min

Shared helpers for the KServe (`specops.backends.kserve`) and production-stack Helm
(`specops.backends.helm_stack`) emitters live here too: labels, GPU node selection, the
serve-config -> argv conversion, the YAML dumper, and `validate_manifests`.

Everything is built as dicts and serialised with `yaml.safe_dump(sort_keys=True)`: spec values
are data, never YAML or shell text. Output is byte-identical for identical input.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import yaml

from specops.backends import mlserver, vllm
from specops.backends.vllm import node_serve_config  # checks every flag against the version
from specops.backends.yaml_emit import dump
from specops.diagnostics import Diagnostic, Pos
from specops.gpus import UnknownGPU, gpu  # stdlib-only catalogue
from specops.ir import Serving

FORMAT = "Kubernetes manifests: v1 ConfigMap/Service/PersistentVolumeClaim, apps/v1 Deployment, autoscaling/v2 HPA"
NAME = "kubernetes"  # the Project's `serving.platform`
ARTIFACT_BACKEND = "kubernetes"  # the manifest's `backend` for these files
RESOURCE_TYPE = "k8s_manifests"  # what plan/apply manage: rendered into a GitOps directory
PROVIDER = "specops.backends.gitops_provider"

# Kubernetes version the manifests are validated against by default (kubernetes-validate ships
# schemas up to its own version; 1.30 is the oldest minor still in GKE/EKS standard support).
DEFAULT_K8S_VERSION = "1.30"

CONFIG_DIR = "/etc/vllm"
CONFIG_KEY = "config.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
# The vllm/vllm-openai image runs as root; HF_HOME is set explicitly so the cache location does
# not depend on the image's user.
HF_CACHE_DIR = "/root/.cache/huggingface"
DEFAULT_PORT = 8000
# Contract with the cluster: a Secret named HF_SECRET_NAME holding the token under HF_SECRET_KEY.
# It is optional so public models start without it; the token is never a literal here.
HF_SECRET_NAME = "hf-token"
HF_SECRET_KEY = "token"
# Custom metric exposed by prometheus-adapter as in the production-stack chart's README
# (`vllm:num_requests_waiting` renamed `vllm_num_requests_waiting`).
HPA_METRIC = "vllm_num_requests_waiting"
HPA_TARGET_AVERAGE = "5"

# GPU type (catalogue name, upper-case) -> node labels, per cloud provider.
# GKE: the label GKE puts on GPU node pools. AWS: Karpenter's well-known label (lower-case GPU
# name; A100 40/80 GB share "a100"). On-prem/local: NVIDIA GPU Feature Discovery's product label
# (the SXM/PCIe variant named here is the common one; other form factors carry other strings).
GPU_NODE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "gcp": {
        "T4": ("cloud.google.com/gke-accelerator", "nvidia-tesla-t4"),
        "V100": ("cloud.google.com/gke-accelerator", "nvidia-tesla-v100"),
        "L4": ("cloud.google.com/gke-accelerator", "nvidia-l4"),
        "A100": ("cloud.google.com/gke-accelerator", "nvidia-tesla-a100"),
        "A100-40GB": ("cloud.google.com/gke-accelerator", "nvidia-tesla-a100"),
        "A100-80GB": ("cloud.google.com/gke-accelerator", "nvidia-a100-80gb"),
        "H100": ("cloud.google.com/gke-accelerator", "nvidia-h100-80gb"),
        "H100-80GB": ("cloud.google.com/gke-accelerator", "nvidia-h100-80gb"),
        "H200": ("cloud.google.com/gke-accelerator", "nvidia-h200-141gb"),
        "B200": ("cloud.google.com/gke-accelerator", "nvidia-b200"),
    },
    "aws": {
        "T4": ("karpenter.k8s.aws/instance-gpu-name", "t4"),
        "V100": ("karpenter.k8s.aws/instance-gpu-name", "v100"),
        "A10G": ("karpenter.k8s.aws/instance-gpu-name", "a10g"),
        "L4": ("karpenter.k8s.aws/instance-gpu-name", "l4"),
        "L40S": ("karpenter.k8s.aws/instance-gpu-name", "l40s"),
        "A100": ("karpenter.k8s.aws/instance-gpu-name", "a100"),
        "A100-40GB": ("karpenter.k8s.aws/instance-gpu-name", "a100"),
        "A100-80GB": ("karpenter.k8s.aws/instance-gpu-name", "a100"),
        "H100": ("karpenter.k8s.aws/instance-gpu-name", "h100"),
        "H100-80GB": ("karpenter.k8s.aws/instance-gpu-name", "h100"),
        "H200": ("karpenter.k8s.aws/instance-gpu-name", "h200"),
        "B200": ("karpenter.k8s.aws/instance-gpu-name", "b200"),
    },
    "onprem": {
        "T4": ("nvidia.com/gpu.product", "Tesla-T4"),
        "V100": ("nvidia.com/gpu.product", "Tesla-V100-SXM2-16GB"),
        "A10G": ("nvidia.com/gpu.product", "NVIDIA-A10G"),
        "L4": ("nvidia.com/gpu.product", "NVIDIA-L4"),
        "L40S": ("nvidia.com/gpu.product", "NVIDIA-L40S"),
        "A100": ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB"),
        "A100-40GB": ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB"),
        "A100-80GB": ("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB"),
        "H100": ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
        "H100-80GB": ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
    },
}
GPU_NODE_LABELS["local"] = GPU_NODE_LABELS["onprem"]



# ---- shared helpers ----------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks (readable ConfigMaps).

    Style only: PyYAML still quotes/escapes whatever a literal block cannot hold.
    """


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(doc: Any) -> bytes:
    """One YAML document, keys sorted, no flow style, multi-line strings as literal blocks:
    byte-stable. Emitted straight to libyaml's C emitter (see yaml_emit)."""

    return dump(doc)


def load_serve_config(serve_config_yaml: bytes) -> dict[str, Any]:
    """The `vllm serve --config` mapping, keys normalised to kebab-case (vLLM accepts both)."""
    data = vllm.loaded_serve_config(serve_config_yaml)
    if data is None:
        data = yaml.load(serve_config_yaml.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    if not isinstance(data, dict):
        raise ValueError("the vLLM serve config must be a mapping")
    return {str(k).replace("_", "-"): v for k, v in data.items()}


def default_serve_config(node: Serving) -> bytes:
    """The node's serve config, from `specops.backends.vllm.serve_config` (the one emitter)."""

    return node_serve_config(node)


def serve_port(config: dict[str, Any]) -> int:
    port = config.get("port", DEFAULT_PORT)
    return int(port)


def served_model_name(node: Serving, config: dict[str, Any]) -> str:
    name = config.get("served-model-name")
    if isinstance(name, list) and name:
        return str(name[0])
    if isinstance(name, str) and name:
        return name
    return node.name


def flag_value(value: Any) -> str:
    """A scalar flag value as vLLM's argparse reads it; mappings become JSON (vLLM's rule)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_to_argv(config: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """Serve-config mapping -> argv, following `vllm serve --config` semantics.

    `true` -> `--flag`, `false` -> `--no-flag`, lists -> `--flag v1 v2`, mappings -> JSON,
    anything else -> `--flag=value` (the `=` form keeps values that start with `-` intact).
    Each element is one argv entry; nothing passes through a shell. Keys in sorted order.
    """
    skipped = set(skip)
    argv: list[str] = []
    for key in sorted(config):
        if key in skipped:
            continue
        value = config[key]
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, list):
            argv.append(f"--{key}")
            argv.extend(flag_value(v) for v in value)
        else:
            argv.append(f"--{key}={flag_value(value)}")
    return argv


def labels(node: Serving) -> dict[str, str]:
    """Recommended app.kubernetes.io labels plus the spec's own (ours win on a clash)."""
    out = dict(node.labels)
    out.update({
        "app.kubernetes.io/name": node.name,
        "app.kubernetes.io/instance": node.name,
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/part-of": node.model,
        "app.kubernetes.io/managed-by": "specops",
        "app.kubernetes.io/version": node.engine_version,
        "specops.dev/env": node.env,
    })
    return out


def annotations(node: Serving) -> dict[str, str]:
    """The gates a rollout of this target waits for, recorded on what is deployed (plan reads
    them from the specs; the annotation makes a gate change visible in the artifact's diff)."""
    return {"specops.dev/gates": ",".join(node.gates)} if node.gates else {}


def helm_only_checks(node: Serving, what: str) -> list[Diagnostic]:
    """`release` groups production-stack values files; other platforms have nothing to group."""
    if "release" not in node.field_sources:
        return []
    file, pos = _source_pos_of(node.field_sources["release"])
    return [Diagnostic("warning", "unsupported", f"{what}: `release` only groups production-stack (helm) values "
                       "files; this platform ignores it", file, pos)]


def selector_labels(node: Serving) -> dict[str, str]:
    # A Deployment's selector is immutable: only labels that never change for the node.
    return {"app.kubernetes.io/name": node.name, "app.kubernetes.io/instance": node.name}


def gpu_node_selector(node: Serving) -> dict[str, str] | None:
    """Node labels that pin the pod to the node's GPU type on its cloud, or None if unknown."""
    table = GPU_NODE_LABELS.get(node.target.provider, {})
    entry = table.get(node.accelerator.strip().upper())
    if entry is None:
        return None
    return {entry[0]: entry[1]}


def gpu_tolerations(node: Serving) -> list[dict[str, str]]:
    # GPU node pools are commonly tainted <resource>:NoSchedule (EKS, Karpenter, GPU
    # operator); GKE adds this toleration itself, so stating it is harmless there.
    return [{"effect": "NoSchedule", "key": gpu_resource_name(node), "operator": "Exists"}]


def gpu_resource_name(node: Serving) -> str:
    """The device plugin's extended resource: amd.com/gpu for AMD parts, else nvidia.com/gpu."""

    try:
        vendor = gpu(node.accelerator).vendor
    except UnknownGPU:
        vendor = "NVIDIA"
    return "amd.com/gpu" if vendor == "AMD" else "nvidia.com/gpu"


def gpu_resources(node: Serving) -> dict[str, dict[str, int]]:
    # Extended resources must have requests == limits; integers, not strings.
    n = node.accelerator_count
    res = gpu_resource_name(node)
    return {"limits": {res: n}, "requests": {res: n}}


def hf_token_secret(node: Serving | None) -> tuple[str, str, bool]:
    """(secret name, key, optional): the spec's `hfToken` secretRef when it names a Kubernetes
    Secret (required then: the spec asked for it), else the optional cluster convention."""
    ref = getattr(node, "hf_token_secret", None) if node is not None else None
    return (ref[0], ref[1], False) if ref else (HF_SECRET_NAME, HF_SECRET_KEY, True)


def hf_token_env(node: Serving | None = None) -> dict[str, Any]:
    name, key, optional = hf_token_secret(node)
    return {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"key": key, "name": name, "optional": optional}}}


def shm_volume(node: Serving | None = None) -> dict[str, Any]:
    # vLLM's workers exchange tensors through /dev/shm (tensor parallel, NCCL); a container's
    # default 64 MiB is too small. Memory-backed emptyDir, counted against pod memory.
    empty: dict[str, Any] = {"medium": "Memory"}
    if node is not None and node.shm_size:
        empty["sizeLimit"] = node.shm_size
    return {"emptyDir": empty, "name": "shm"}


# ---- pod shape (shared by Kubernetes, KServe and production-stack) -----------------------------


def pod_resources(node: Serving) -> dict[str, dict[str, Any]]:
    """GPU requests = limits (a GPU server) plus the spec's CPU/memory requests and limits;
    empty sections are left out (a CPU server without a shape has `resources: {}`)."""
    res = gpu_resources(node) if node.engine == "vllm" else {"limits": {}, "requests": {}}
    for kind, cpu, mem in (("requests", node.cpu_request, node.memory_request),
                           ("limits", node.cpu_limit, node.memory_limit)):
        if cpu is not None:
            res[kind]["cpu"] = cpu
        if mem is not None:
            res[kind]["memory"] = mem
    return {k: v for k, v in res.items() if v}


def user_env(node: Serving) -> list[dict[str, Any]]:
    """The spec's env: literals, and Kubernetes Secrets by reference (see env_checks)."""
    out: list[dict[str, Any]] = []
    for e in node.env_vars:
        if e.secret is None:
            out.append({"name": e.name, "value": e.value})
        elif e.secret[0] == "kubernetes":
            out.append({"name": e.name, "valueFrom": {"secretKeyRef": {"key": e.secret[2] or e.name,
                                                                       "name": e.secret[1]}}})
    return out


def env_checks(node: Serving, what: str) -> list[Diagnostic]:
    """Secrets a pod cannot read: only Kubernetes Secrets mount (sync others with External Secrets)."""
    out = []
    for e in node.env_vars:
        if e.secret is not None and e.secret[0] != "kubernetes":
            file, pos = _source_pos_of(e.source or node.source)
            out.append(Diagnostic("error", "unsupported",
                                  f"{what}: env '{e.name}' names a {e.secret[0]} secret; a pod reads Kubernetes "
                                  f"Secrets only (sync it into one, e.g. with External Secrets)", file, pos))
    return out


def node_selector(node: Serving) -> dict[str, str]:
    """The GPU type's node label, with the spec's own selector over it."""
    return {**(gpu_node_selector(node) or {}), **node.node_selector}


def tolerations(node: Serving) -> list[dict[str, Any]]:
    return gpu_tolerations(node) + [dict(t) for t in node.tolerations]


def probe(kind: str, node: Serving, port: int, defaults: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One probe: the engine's default timings and path for `kind`, with the spec's over them."""
    base = dict((defaults or _DEFAULT_PROBES)[kind])
    path = base.pop("path", "/health")
    given = dict(node.probes.get(kind, {}))
    path = given.pop("path", path)
    base.update(given)
    return {**base, "httpGet": {"path": path, "port": port}}


def probes(node: Serving, port: int, defaults: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    return {f"{kind}Probe": probe(kind, node, port, defaults) for kind in ("startup", "readiness", "liveness")}


def cache_access_mode(node: Serving) -> str:
    # Several replicas on several nodes can only share the cache through ReadWriteMany storage
    # (Filestore, EFS...); a single replica works with any ReadWriteOnce class.
    return node.model_cache.access_mode or ("ReadWriteMany" if node.replicas_max > 1 else "ReadWriteOnce")


# Images of the init steps that fetch trained adapters from the artifact store (pinned tags;
# argv lists, no shell). Published adapters are fetched by the serving image itself, whose
# huggingface_hub brings the `hf` CLI and can download at a pinned commit.
FETCH_IMAGES = {
    "s3://": "amazon/aws-cli:2.22.35",
    "gs://": "gcr.io/google.com/cloudsdktool/google-cloud-cli:502.0.0-slim",
}


def adapter_fetch_command(node: Serving, adapter: Any) -> tuple[str, list[str]] | None:
    """(image, argv) of the init step that puts `adapter` at its path; None when this platform
    cannot fetch it (its URI's scheme has no fetcher: `check` reports it)."""
    if adapter.source == "published":
        return node.image, ["hf", "download", adapter.uri, "--revision", adapter.revision,
                            "--local-dir", adapter.path]
    if adapter.uri.startswith("s3://"):
        return FETCH_IMAGES["s3://"], ["aws", "s3", "sync", adapter.uri, adapter.path]
    if adapter.uri.startswith("gs://"):
        return FETCH_IMAGES["gs://"], ["gcloud", "storage", "rsync", "--recursive", adapter.uri, adapter.path]
    return None


def adapter_init_containers(node: Serving, mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One init container per adapter, each writing into the volume the server reads."""
    out = []
    for i, a in enumerate(node.adapters):
        fetch = adapter_fetch_command(node, a)
        if fetch is None:
            continue
        image, argv = fetch
        c: dict[str, Any] = {"name": f"fetch-adapter-{i}", "image": image, "command": argv,
                             "volumeMounts": mounts}
        if a.source == "published":
            c["env"] = [{"name": "HF_HOME", "value": HF_CACHE_DIR}, hf_token_env(node)]
        out.append(c)
    return out


def adapter_checks(node: Serving, what: str) -> list[Diagnostic]:
    """Adapters this platform cannot fetch, at their line in the ServingTarget."""
    out = []
    for a in node.adapters:
        if adapter_fetch_command(node, a) is None:
            file, pos = _source_pos_of(a.source_pos or node.source)
            out.append(Diagnostic(
                "error", "unsupported",
                f"{what}: adapter '{a.name}' lives at {a.uri}, which no init step of this platform can "
                f"fetch (s3:// and gs:// artifact stores can be)", file, pos))
    return out


def _source_pos_of(source: Any) -> tuple[str | None, Pos | None]:
    if source is None:
        return None, None
    return source.file, Pos(source.line, source.col)


def _source_pos(node: Serving) -> tuple[str | None, Pos | None]:
    return _source_pos_of(node.source)


def common_checks(node: Serving, what: str) -> list[Diagnostic]:
    """What every Kubernetes-based shape needs: a known GPU label and sane replica counts."""
    out: list[Diagnostic] = []
    # The spec's position only when there is something to report: it costs a re-parse of the file.
    if node.accelerator_count > 0 and gpu_node_selector(node) is None:
        known = sorted(GPU_NODE_LABELS.get(node.target.provider, {}))
        out.append(Diagnostic(
            "error", "unsupported",
            f"{what}: no node label is known for GPU '{node.accelerator}' on provider "
            f"'{node.target.provider}'", *_source_pos(node),
            (f"known GPUs: {', '.join(known) or 'none'}",)))
    if node.replicas_min < 0 or node.replicas_max < max(1, node.replicas_min):
        out.append(Diagnostic(
            "error", "value",
            f"{what}: replicas must satisfy 0 <= min <= max and max >= 1 "
            f"(got min={node.replicas_min}, max={node.replicas_max})", *_source_pos(node)))
    if len(node.name) > 63:
        out.append(Diagnostic("error", "value",
                              f"{what}: name '{node.name}' is longer than 63 characters", *_source_pos(node)))
    return out


# ---- plain Kubernetes --------------------------------------------------------------------------


def check(node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]:
    out = (common_checks(node, "kubernetes") + adapter_checks(node, "kubernetes") + env_checks(node, "kubernetes")
           + helm_only_checks(node, "kubernetes"))
    return out + (mlserver_checks(node, "kubernetes") if node.engine == "mlserver" else [])


def _metadata(node: Serving, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": labels(node), "name": name, "namespace": node.target.namespace}
    if annotations(node):
        meta["annotations"] = annotations(node)
    return meta


def configmap_name(node: Serving) -> str:
    return f"{node.name}-vllm-config"


def pvc_name(node: Serving) -> str:
    return f"{node.name}-model-cache"


_DEFAULT_PROBES: dict[str, dict[str, Any]] = {
    # Weights download + load + CUDA graph capture can take many minutes: up to 30 here
    # before liveness takes over.
    "startup": {"failureThreshold": 180, "periodSeconds": 10},
    "readiness": {"failureThreshold": 3, "periodSeconds": 5, "timeoutSeconds": 5},
    "liveness": {"failureThreshold": 3, "periodSeconds": 10, "timeoutSeconds": 5},
}


def _deployment(node: Serving, config: dict[str, Any], config_sha: str) -> dict[str, Any]:
    port = serve_port(config)
    multi = node.replicas_max > 1
    container: dict[str, Any] = {
        "name": "vllm",
        "image": node.image,
        "command": ["vllm", "serve"],
        "args": ["--config", CONFIG_PATH],
        "env": [{"name": "HF_HOME", "value": HF_CACHE_DIR}, hf_token_env(node), *user_env(node)],
        "ports": [{"containerPort": port, "name": "http", "protocol": "TCP"}],
        "resources": pod_resources(node),
        "volumeMounts": [
            {"mountPath": CONFIG_DIR, "name": "vllm-config", "readOnly": True},
            {"mountPath": HF_CACHE_DIR, "name": "model-cache"},
            {"mountPath": "/dev/shm", "name": "shm"},
        ],
        **probes(node, port),
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        **({"initContainers": inits} if (inits := adapter_init_containers(
            node, [{"mountPath": HF_CACHE_DIR, "name": "model-cache"}])) else {}),
        "volumes": [
            {"configMap": {"items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
                           "name": configmap_name(node)}, "name": "vllm-config"},
            ({"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc_name(node)}}
             if node.model_cache.enabled else {"emptyDir": {}, "name": "model-cache"}),
            shm_volume(node),
        ],
    }
    pod_spec["tolerations"] = tolerations(node)
    selector = node_selector(node)
    if selector:
        pod_spec["nodeSelector"] = selector
    if node.affinity:
        pod_spec["affinity"] = node.affinity
    # One GPU pod cannot surge onto a GPU that is not there: replace in place. With one replica
    # and a ReadWriteOnce cache, Recreate also avoids two pods fighting over the volume.
    kind = node.strategy or ("RollingUpdate" if multi else "Recreate")
    strategy: dict[str, Any] = (
        {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"}
        if kind == "RollingUpdate" else {"type": "Recreate"})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(node, node.name),
        "spec": {
            "replicas": node.replicas_min,
            "selector": {"matchLabels": selector_labels(node)},
            "strategy": strategy,
            "template": {
                # A config change changes the hash, so pods roll with it.
                "metadata": {"annotations": {"specops.dev/config-sha256": config_sha},
                             "labels": labels(node)},
                "spec": pod_spec,
            },
        },
    }


def _configmap(node: Serving, serve_config_yaml: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(node, configmap_name(node)),
            "data": {CONFIG_KEY: serve_config_yaml.decode("utf-8")}}


def _service(node: Serving, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(node, node.name),
            "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP", "targetPort": "http"}],
                     "selector": selector_labels(node), "type": "ClusterIP"}}


def _pvc(node: Serving) -> dict[str, Any]:
    mc = node.model_cache
    spec: dict[str, Any] = {"accessModes": [cache_access_mode(node)], "resources": {"requests": {"storage": mc.size}}}
    if mc.storage_class:
        spec["storageClassName"] = mc.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _metadata(node, pvc_name(node)),
            "spec": spec}


def _hpa(node: Serving) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(node, node.name),
        "spec": {
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            "maxReplicas": node.replicas_max,
            "metrics": [{"pods": {"metric": {"name": HPA_METRIC},
                                  "target": {"averageValue": HPA_TARGET_AVERAGE, "type": "AverageValue"}},
                         "type": "Pods"}],
            # An HPA cannot hold 0 replicas without the HPAScaleToZero feature gate.
            "minReplicas": max(1, node.replicas_min),
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": node.name},
        },
    }


def kubernetes_resources(node: Serving, serve_config_yaml: bytes | None) -> dict[str, dict[str, Any]]:
    """The resources as dicts, keyed by file path (what `emit` serialises)."""
    if node.engine == "mlserver":
        return mlserver_resources(node)
    config = load_serve_config(serve_config_yaml)
    sha = hashlib.sha256(serve_config_yaml).hexdigest()
    out = {
        "configmap.yaml": _configmap(node, serve_config_yaml),
        "deployment.yaml": _deployment(node, config, sha),
        "service.yaml": _service(node, serve_port(config)),
    }
    if node.model_cache.enabled:
        out["pvc.yaml"] = _pvc(node)
    if node.replicas_max > node.replicas_min:
        out["hpa.yaml"] = _hpa(node)
    return out


def emit(node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
    """Plain Kubernetes manifests for one Serving node: file name -> YAML bytes, one resource a file.

    `serve_config_yaml` is the `vllm serve --config` file (from `specops.backends.vllm`); when
    None it is produced from the node.
    """
    if serve_config_yaml is None and node.engine != "mlserver":
        serve_config_yaml = default_serve_config(node)
    return {path: dump_yaml(doc) for path, doc in sorted(kubernetes_resources(node, serve_config_yaml).items())}


# ---- validation --------------------------------------------------------------------------------


def validate_manifests(files: dict[str, bytes], k8s_version: str = DEFAULT_K8S_VERSION) -> list[str]:
    """Validate every Kubernetes resource in `files` against the Kubernetes OpenAPI schemas.

    Strict mode (unknown fields are errors), via kubernetes-validate's bundled schemas, offline.
    It reports the first error per resource. Returns "path: kind/name: field.path: message"
    lines; empty when all pass. A kind without a bundled schema (a CRD such as KServe's
    InferenceService) is reported too, so nothing passes unchecked by accident — validate those
    with `validate_inferenceservice` instead. Files that are not YAML manifests (a Helm
    values.yaml) must not be passed in.
    """
    import kubernetes_validate  # lazy: 100 MB of schemas, only when validating

    errors: list[str] = []
    for path in sorted(files):
        try:
            docs = [d for d in yaml.safe_load_all(files[path].decode("utf-8")) if d]
        except yaml.YAMLError as exc:
            errors.append(f"{path}: not YAML: {exc}")
            continue
        for doc in docs:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                errors.append(f"{path}: not a Kubernetes resource (no apiVersion/kind)")
                continue
            name = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '?')}"
            try:
                kubernetes_validate.validate(doc, k8s_version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                errors.append(f"{path}: {name}: {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{path}: {name}: {exc.message}")
    return errors


# ---- one entry point per serving platform ------------------------------------------------------


# ---- MLServer (classical models) -------------------------------------------------------------
# A Deployment running `mlserver start /etc/mlserver` (its settings.json and model-settings.json
# from a ConfigMap), the registered model fetched from the artifact store by an init container
# into an emptyDir at /mnt/models, V2 health probes, a Service for REST/gRPC, and an HPA on CPU
# when replicas can grow. Request timeouts, concurrency limits and auth have no MLServer or
# Deployment field: reported at their lines.

MLSERVER_CONFIG_DIR = "/etc/mlserver"
MLSERVER_MODEL_DIR = "/mnt/models"
_MLSERVER_PROBES: dict[str, dict[str, Any]] = {
    "startup": {"failureThreshold": 60, "path": mlserver.READY_PATH, "periodSeconds": 5},
    "readiness": {"failureThreshold": 3, "path": mlserver.READY_PATH, "periodSeconds": 5, "timeoutSeconds": 3},
    "liveness": {"failureThreshold": 3, "path": mlserver.LIVE_PATH, "periodSeconds": 10, "timeoutSeconds": 3},
}


def model_fetch_command(uri: str | None, dest: str) -> tuple[str, list[str]] | None:
    """(image, argv) of the init step that copies the registered model to `dest`; None when
    the artifact store is one no cluster can read (file://)."""
    if uri and uri.startswith("s3://"):
        return FETCH_IMAGES["s3://"], ["aws", "s3", "sync", uri, dest]
    if uri and uri.startswith("gs://"):
        return FETCH_IMAGES["gs://"], ["gcloud", "storage", "rsync", "--recursive", uri, dest]
    return None


def mlserver_checks(node: Serving, what: str, requests: bool = False, auth_modes: tuple[str, ...] = ()) -> list[Diagnostic]:
    """What an MLServer pod on `what` cannot carry, at the field's line: a model no pod can
    fetch, and (unless the platform carries them: `requests`, `auth_modes`) request limits,
    autoscaling targets other than cpu, and auth."""
    out = []

    def say(field: str, severity: str, msg: str) -> None:
        out.append(Diagnostic(severity, "unsupported", f"{what}: {msg}", *mlserver.field_pos(node, field)))

    if model_fetch_command(node.model_artifact_uri, MLSERVER_MODEL_DIR) is None:
        say("model", "error", f"the model lives at {node.model_artifact_uri}, which no pod can read; give the "
           "target an s3:// or gs:// artifactStore")
    if not requests:
        if node.request_timeout_ms is not None or node.max_concurrency is not None:
            say("requestSettings", "warning", "MLServer and a Deployment have no request timeout or concurrency "
               "limit; not applied (KServe and SageMaker carry them)")
        if node.autoscale_metric not in (None, "cpu"):
            say("replicas", "error", f"a HorizontalPodAutoscaler scales an MLServer Deployment on cpu only, not "
               f"{node.autoscale_metric} (KServe scales on concurrency and rps)")
    if node.auth_mode is not None and node.auth_mode not in auth_modes:
        say("auth", "error", f"{node.auth_mode} authentication is not something {what} can enforce for MLServer"
           + (f" (it takes: {', '.join(auth_modes)})" if auth_modes else "; put the endpoint behind your gateway's "
              "auth, or serve on SageMaker (IAM)"))
    return out


def mlserver_model_settings(node: Serving) -> dict[str, Any]:
    doc = mlserver.model_settings(node)
    doc["parameters"]["uri"] = f"{MLSERVER_MODEL_DIR}/{mlserver.MODEL_FILES[node.runtime or 'sklearn']}"
    return doc


def _mlserver_configmap(node: Serving) -> dict[str, Any]:
    data = {mlserver.SETTINGS_FILE: mlserver.json_bytes(mlserver.settings(node)).decode(),
            mlserver.MODEL_SETTINGS_FILE: mlserver.json_bytes(mlserver_model_settings(node)).decode()}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(node, f"{node.name}-mlserver-config"),
            "data": data}


def _mlserver_deployment(node: Serving, config_sha: str) -> dict[str, Any]:
    volumes = [{"configMap": {"name": f"{node.name}-mlserver-config"}, "name": "mlserver-config"},
               {"emptyDir": {}, "name": "model"}]
    container: dict[str, Any] = {
        "name": "mlserver", "image": node.image, "command": ["mlserver", "start", MLSERVER_CONFIG_DIR],
        "env": user_env(node),
        "ports": [{"containerPort": mlserver.HTTP_PORT, "name": "http", "protocol": "TCP"},
                  {"containerPort": mlserver.GRPC_PORT, "name": "grpc", "protocol": "TCP"},
                  {"containerPort": mlserver.METRICS_PORT, "name": "metrics", "protocol": "TCP"}],
        "resources": pod_resources(node),
        "volumeMounts": [{"mountPath": MLSERVER_CONFIG_DIR, "name": "mlserver-config", "readOnly": True},
                         {"mountPath": MLSERVER_MODEL_DIR, "name": "model", "readOnly": True}],
        **probes(node, mlserver.HTTP_PORT, _MLSERVER_PROBES),
    }
    pod: dict[str, Any] = {"containers": [container], "volumes": volumes}
    fetch = model_fetch_command(node.model_artifact_uri, MLSERVER_MODEL_DIR)
    if fetch is not None:
        pod["initContainers"] = [{"name": "fetch-model", "image": fetch[0], "command": fetch[1],
                                  "volumeMounts": [{"mountPath": MLSERVER_MODEL_DIR, "name": "model"}]}]
    if node.node_selector:
        pod["nodeSelector"] = dict(node.node_selector)
    if node.tolerations:
        pod["tolerations"] = [dict(t) for t in node.tolerations]
    if node.affinity:
        pod["affinity"] = node.affinity
    kind = node.strategy or "RollingUpdate"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(node, node.name),
        "spec": {"replicas": node.replicas_min, "selector": {"matchLabels": selector_labels(node)},
                 "strategy": {"type": kind},
                 "template": {"metadata": {"annotations": {
                     "specops.dev/config-sha256": config_sha,
                     # A retrained model is a new revision: the pods restart and fetch it.
                     **({"specops.dev/model-revision": node.model_revision} if node.model_revision else {})},
                     "labels": labels(node)}, "spec": pod}},
    }


def _mlserver_service(node: Serving) -> dict[str, Any]:
    ports = [{"name": "http", "port": mlserver.HTTP_PORT, "protocol": "TCP", "targetPort": "http"},
             {"name": "grpc", "port": mlserver.GRPC_PORT, "protocol": "TCP", "targetPort": "grpc"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(node, node.name),
            "spec": {"ports": ports, "selector": selector_labels(node), "type": "ClusterIP"}}


def _mlserver_hpa(node: Serving) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(node, node.name),
            "spec": {"maxReplicas": node.replicas_max, "minReplicas": max(1, node.replicas_min),
                     "metrics": [{"resource": {"name": "cpu", "target": {
                         "averageUtilization": node.autoscale_target or 70, "type": "Utilization"}},
                         "type": "Resource"}],
                     "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": node.name}}}


def mlserver_resources(node: Serving) -> dict[str, dict[str, Any]]:
    cm = _mlserver_configmap(node)
    sha = hashlib.sha256(json.dumps(cm["data"], sort_keys=True).encode()).hexdigest()
    out = {"configmap.yaml": cm, "deployment.yaml": _mlserver_deployment(node, sha),
           "service.yaml": _mlserver_service(node)}
    if node.replicas_max > node.replicas_min:
        out["hpa.yaml"] = _mlserver_hpa(node)
    return out
