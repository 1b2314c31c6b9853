"""A SageMaker real-time endpoint serving a model with vLLM in the LMI (DJL Serving) container.

Emits `<name>/endpoint.json`: the three SageMaker API requests, in apply order, exactly as
boto3 takes them (`CreateModel`, `CreateEndpointConfig`, `CreateEndpoint` keys hold the
keyword arguments of `create_model`, `create_endpoint_config`, `create_endpoint`).

Container: LMI V20 (`djl-inference:0.36.0-lmi20.0.0-cu128-v1.0`, vLLM 0.15.1; DJL Serving
release notes, serving/docs/lmi/release_notes.md), from the region's DLC account (table from
sagemaker-python-sdk image_uri_config/djl-lmi.json). A node image that is already an ECR image
is used as given; the default `vllm/vllm-openai` image cannot run on SageMaker.

Engine settings travel as environment variables (serving/docs/lmi/deployment_guide/
configurations.md: `option.<key>` <-> `OPTION_<KEY>`; vllm_user_guide.md: every vLLM
EngineArgs field passes through as `OPTION_<FIELD>`), in LMI's vLLM async mode (the default
since LMI V17; set explicitly so model-architecture detection cannot change it):

    model                    -> HF_MODEL_ID (HF id or s3:// prefix)
    tensor-parallel-size     -> OPTION_TENSOR_PARALLEL_DEGREE (LMI rejects the vLLM name if they
                                disagree; default: accelerator_count)
    pipeline-parallel-size   -> OPTION_PIPELINE_PARALLEL_DEGREE
    max-num-seqs             -> OPTION_MAX_ROLLING_BATCH_SIZE (LMI feeds it to max_num_seqs;
                                default pinned to 256, vLLM's, since LMI's is 32)
    max-num-batched-tokens   -> OPTION_MAX_ROLLING_BATCH_PREFILL_TOKENS
    quantization             -> OPTION_QUANTIZE
    cpu-offload-gb           -> OPTION_CPU_OFFLOAD_GB_PER_GPU
    max-loras                -> OPTION_MAX_LORAS (pinned to vLLM's 1 when LoRA is on, LMI's is 4)
    any other flag           -> OPTION_<FLAG_IN_UPPER_SNAKE>: booleans "true"/"false" (LMI turns
                                "false" into --no-flag), mappings as JSON, numbers as text
    host, port               -> dropped (the container listens on 8080 for SageMaker)
    + OPTION_ASYNC_MODE=true, OPTION_ROLLING_BATCH=disable,
      OPTION_ENTRYPOINT=djl_python.lmi_vllm.vllm_async_service

Adapters (serving/docs/adapters.md, "Adapters local directory"; vllm_user_guide.md, "LoRA
Adapter Support"): LMI registers every folder of `adapters/` in its model directory
(/opt/ml/model) as a LoRA adapter of that name at start-up, with `OPTION_ENABLE_LORA=true` and
`OPTION_MAX_LORAS` / `OPTION_MAX_LORA_RANK` (the serve config's max-lora-rank: vLLM's smallest
allowed value holding the largest adapter, from backends/vllm.serving_args). The model gets a
`ModelDataSource`, an uncompressed S3 prefix of the target's artifact store that SageMaker copies
to /opt/ml/model, named by a hash of the adapters it holds; `adapters.json` is the copy plan apply
runs first (each trained adapter's registered artifact prefix -> `<prefix>adapters/<name>/`). The
base still comes from the Hub (HF_MODEL_ID). A published adapter (Hub repo at a commit) has no
place there: LMI takes adapters from that folder only, so it is a warning at its line.

LMI passes on only keys that are vLLM `EngineArgs` fields, so server-only flags (api-key,
uvicorn settings...) have no effect there. List values cannot travel in one environment
variable: `check` reports them.

Canary: `DeploymentConfig.BlueGreenUpdatePolicy` with a CANARY traffic shift of
canary_percent of capacity, which SageMaker applies when the endpoint moves to a new endpoint
config. Names of the model and endpoint config carry a hash of their content (both are
immutable in SageMaker), so a change creates new ones and the stable endpoint name moves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from specops.backends import jsonfmt, mlserver
from specops.backends import kubernetes as k8s
from specops.backends import sagemaker_autoscaling as autoscaling
from specops.backends import sagemaker_classical as sklearn_container
from specops.diagnostics import Diagnostic
from specops.gpus import CPU_FAMILIES, cpu_instance
from specops.ir import Adapter, Serving

FORMAT = "SageMaker CreateModel/CreateEndpointConfig/CreateEndpoint requests (LMI V20 vLLM container)"
NAME = "sagemaker"
# The manifest has always called these files' backend "sagemaker-endpoint", apart from the
# "sagemaker" pipeline backend: kept, so every compiled manifest stays byte-identical.
ARTIFACT_BACKEND = "sagemaker-endpoint"
RESOURCE_TYPE = "sagemaker_endpoint"
PROVIDER = "specops.backends.sagemaker_provider"

LMI_REPOSITORY = "djl-inference"
LMI_TAG = "0.36.0-lmi20.0.0-cu128-v1.0"
LMI_VLLM_VERSION = "0.15.1"  # the vLLM inside LMI_TAG (LMI V20 release notes)
# DLC registry account per region (sagemaker-python-sdk image_uri_config/djl-lmi.json).
LMI_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356", "ap-east-1": "871362719292", "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884", "ap-northeast-3": "364406365360", "ap-south-1": "763104351884",
    "ap-southeast-1": "763104351884", "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896", "ca-central-1": "763104351884", "ca-west-1": "204538143572",
    "cn-north-1": "727897471807", "cn-northwest-1": "727897471807", "eu-central-1": "763104351884",
    "eu-north-1": "763104351884", "eu-south-1": "692866216735", "eu-west-1": "763104351884",
    "eu-west-2": "763104351884", "eu-west-3": "763104351884", "il-central-1": "780543022126",
    "me-central-1": "914824155844", "me-south-1": "217643126080", "sa-east-1": "763104351884",
    "us-east-1": "763104351884", "us-east-2": "763104351884", "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353", "us-west-1": "763104351884", "us-west-2": "763104351884",
}

# vLLM flag -> LMI option name, where LMI uses its own name (vllm_rb_properties.py).
_RENAMED: dict[str, str] = {
    "tensor-parallel-size": "TENSOR_PARALLEL_DEGREE",
    "pipeline-parallel-size": "PIPELINE_PARALLEL_DEGREE",
    "max-num-seqs": "MAX_ROLLING_BATCH_SIZE",
    "max-num-batched-tokens": "MAX_ROLLING_BATCH_PREFILL_TOKENS",
    "quantization": "QUANTIZE",
    "cpu-offload-gb": "CPU_OFFLOAD_GB_PER_GPU",
}
# lora-modules: LMI finds adapters in its model directory's `adapters/` folder instead.
_DROPPED = ("host", "port", "model", "lora-modules")
# LMI maps dtype through its own table and fails on other names.
LMI_DTYPES = ("auto", "bf16", "bfloat16", "float16", "float32", "fp16", "fp32")
VLLM_DEFAULT_MAX_NUM_SEQS = 256
# Weights download + load can be long; LMI's own model_loading_timeout default is 1800 s and
# its docs ask for a startup health-check timeout at least as long.
STARTUP_TIMEOUT_S = 1800
CANARY_WAIT_S = 600
VARIANT = "AllTraffic"
# The adapter copy plan beside endpoint.json (see the module docstring).
ADAPTERS_FILE = "adapters.json"


def _pos(node: Serving):
    return k8s._source_pos(node)


def check(node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]:
    """What the LMI endpoint cannot express, at the serving spec's position."""
    if node.engine == "mlserver":
        return classical_checks(node)
    config = k8s.load_serve_config(serve_config_yaml or k8s.default_serve_config(node))
    out: list[Diagnostic] = []

    # The spec's position only when there is something to report: it costs a re-parse of the file.
    def err(code: str, msg: str, *notes: str) -> None:
        out.append(Diagnostic("error", code, f"sagemaker endpoint: {msg}", *_pos(node), notes))

    if not node.instance_type:
        err("missing-field", "an instance type is required (e.g. ml.g5.2xlarge)")
    if not node.target.role_arn:
        err("missing-field", f"target '{node.target.name}' has no role_arn (SageMaker execution role)")
    if not _is_ecr(node.image) and (node.target.region or "") not in LMI_ACCOUNTS:
        err("unsupported", f"no LMI container is known for region '{node.target.region}'",
            f"known regions: {', '.join(sorted(LMI_ACCOUNTS))}")
    for key in sorted(config):
        if isinstance(config[key], list) and key not in _DROPPED:
            err("unsupported", f"'{key}' takes a list, which LMI cannot pass through one "
                               f"environment variable")
    dtype = config.get("dtype")
    if dtype is not None and str(dtype) not in LMI_DTYPES:
        err("unsupported", f"dtype '{dtype}' is not one LMI maps", f"use one of: {', '.join(LMI_DTYPES)}")
    tp = config.get("tensor-parallel-size")
    if tp is not None and node.accelerator_count and int(tp) > node.accelerator_count:
        err("value", f"tensor-parallel-size {tp} exceeds accelerator_count {node.accelerator_count}")
    if node.replicas_min < 1:
        err("value", "a SageMaker endpoint needs at least one instance (replicas min >= 1)")
    out.extend(request_checks(node))
    if not _is_ecr(node.image) and node.engine_version != LMI_VLLM_VERSION:
        out.append(Diagnostic(
            "warning", "unsupported",
            f"sagemaker endpoint: the LMI container runs vLLM {LMI_VLLM_VERSION}, but the flags "
            f"were checked against vLLM {node.engine_version}", *_pos(node)))
    out.extend(shape_checks(node) + k8s.helm_only_checks(node, "sagemaker endpoint"))
    out.extend(adapter_checks(node))
    return out


def _stageable(a: Adapter) -> bool:
    """A trained adapter registered in S3: apply copies it into the model directory's prefix."""
    return a.source == "trained" and a.uri.startswith("s3://")


def adapter_checks(node: Serving) -> list[Diagnostic]:
    """Each adapter LMI cannot load, at its line: a Hub adapter (LMI reads adapters only from
    the `adapters/` folder SageMaker fills from S3) or a trained one registered outside S3."""
    out = []
    for a in node.adapters:
        if _stageable(a):
            continue
        afile, apos = k8s._source_pos_of(a.source_pos or node.source)
        if a.source == "published":
            why = (f"it is a Hub adapter ({a.uri}@{a.revision}), and LMI loads adapters only from the "
                   f"`adapters/` folder of its S3 model directory")
            hint = "register it as a trained adapter's artifact in the target's S3 store, or serve it on another platform"
        else:
            why = f"it is registered at {a.uri}, and SageMaker copies the model directory from S3 only"
            hint = "give the target an s3:// artifactStore"
        out.append(Diagnostic("warning", "unsupported", f"sagemaker endpoint: adapter '{a.name}' is not "
                              f"served: {why}", afile, apos, (hint,)))
    return out


def adapter_prefix(node: Serving) -> str | None:
    """The S3 prefix SageMaker copies to LMI's model directory (holding `adapters/<name>/`), or
    None when no adapter can be staged. Named by a hash of what it holds, so another adapter set
    is another prefix, hence another (hash-named) model, never a prefix rewritten under a live one."""
    staged = [a for a in node.adapters if _stageable(a)]
    store = node.target.artifact_store.rstrip("/")
    if not staged or not store.startswith("s3://"):
        return None
    digest = _hash({"adapters": [[a.name, a.uri] for a in staged]})
    return f"{store}/{node.env}/serving/{node.name}/lmi-model-{digest}/"


def adapter_copies(node: Serving) -> list[dict[str, str]]:
    """The copy plan apply runs before CreateModel: each staged adapter's registered artifact
    prefix into `adapters/<name>/` of adapter_prefix (sorted by name)."""
    prefix = adapter_prefix(node)
    if prefix is None:
        return []
    return [{"Adapter": a.name, "Source": a.uri.rstrip("/") + "/", "Destination": f"{prefix}adapters/{a.name}/"}
            for a in sorted(node.adapters, key=lambda a: a.name) if _stageable(a)]


def request_checks(node: Serving) -> list[Diagnostic]:
    """Request settings and auth, which only the classical container's server takes, and IAM."""
    out = []
    if node.engine != "mlserver" and (node.request_timeout_ms is not None or node.max_concurrency is not None):
        out.append(Diagnostic("warning", "unsupported", "sagemaker endpoint: the LMI container has no request "
                              "timeout or concurrency setting; not applied", *mlserver.field_pos(node, "requestSettings")))
    if node.auth_mode is not None:
        out.append(Diagnostic("error", "unsupported", f"sagemaker endpoint: SageMaker authenticates callers with "
                              f"IAM (SigV4), not a {node.auth_mode}; drop `auth` for this target",
                              *mlserver.field_pos(node, "auth")))
    return out


def classical_checks(node: Serving) -> list[Diagnostic]:
    """What the scikit-learn container endpoint needs and cannot carry."""
    file, pos = _pos(node)
    out: list[Diagnostic] = []

    def err(code: str, msg: str, field: str | None = None) -> None:
        out.append(Diagnostic("error", code, f"sagemaker endpoint: {msg}",
                              *(mlserver.field_pos(node, field) if field else (file, pos))))

    if not node.instance_type:
        err("missing-field", "an instance type is required (a CPU one such as ml.m5.xlarge)")
    elif cpu_instance(node.instance_type) is None:
        err("value", f"{node.instance_type} is not a CPU instance type this catalogue knows; a classical model "
                     f"serves on {', '.join(CPU_FAMILIES)}", "instanceType")
    if not node.target.role_arn:
        err("missing-field", f"target '{node.target.name}' has no role_arn (SageMaker execution role)")
    if not _is_ecr(node.image) and (node.target.region or "") not in sklearn_container.SKLEARN_ACCOUNTS:
        err("unsupported", f"no scikit-learn container is known for region '{node.target.region}'")
    if not (node.model_artifact_uri or "").startswith("s3://"):
        err("unsupported", f"the model lives at {node.model_artifact_uri}; a SageMaker endpoint reads it from S3 "
                           "(give the target an s3:// artifactStore)")
    if node.replicas_min < 1:
        err("value", "a SageMaker endpoint needs at least one instance (replicas min >= 1)")
    return out + shape_checks(node) + request_checks(node)


# Pod-shape fields an endpoint has no place for, and why (each reported at its line).
_NO_SHAPE = {
    "resources": "the instance type sets CPU and memory",
    "shmSize": "the LMI container sizes /dev/shm itself",
    "modelCache": "SageMaker downloads the weights to the instance's own storage",
    "placement": "SageMaker places instances itself",
    "strategy": "endpoint updates follow the deployment config (canary), not a pod strategy",
}


def shape_checks(node: Serving) -> list[Diagnostic]:
    """Serving-shape fields: what the endpoint carries (literal env, the startup probe's
    budget) and, at their line, what it cannot."""
    out = []
    for field, why in _NO_SHAPE.items():
        if field in node.field_sources:
            file, pos = k8s._source_pos_of(node.field_sources[field])
            out.append(Diagnostic("warning", "unsupported", f"sagemaker endpoint: `{field}` is not carried: {why}",
                                  file, pos))
    for kind in ("readiness", "liveness"):
        if kind in node.probes:
            file, pos = k8s._source_pos_of(node.field_sources.get("probes") or node.source)
            out.append(Diagnostic("warning", "unsupported", f"sagemaker endpoint: the {kind} probe is not carried: "
                                  "SageMaker pings /ping itself (only the startup budget is)", file, pos))
    for e in node.env_vars:
        if e.secret is not None:
            file, pos = k8s._source_pos_of(e.source or node.source)
            out.append(Diagnostic("error", "unsupported", f"sagemaker endpoint: env '{e.name}' is a secret, and a "
                                  "SageMaker model's environment holds only literal values", file, pos))
    return out


def startup_timeout(node: Serving) -> int:
    """The startup probe's budget (delay + period x failures), else LMI's loading default."""
    p = node.probes.get("startup")
    if not p:
        return STARTUP_TIMEOUT_S
    budget = p.get("initialDelaySeconds", 0) + p.get("periodSeconds", 10) * p.get("failureThreshold", 180)
    return max(60, min(3600, budget))  # the API's range


def _is_ecr(image: str) -> bool:
    return ".dkr.ecr." in image.split("/", 1)[0]


def lmi_image(region: str) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{LMI_ACCOUNTS[region]}.dkr.ecr.{region}.{domain}/{LMI_REPOSITORY}:{LMI_TAG}"


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return k8s.flag_value(value)


def lmi_environment(node: Serving, config: dict[str, Any]) -> dict[str, str]:
    """Serve config -> the LMI container's environment (see the module docstring)."""
    env: dict[str, str] = {
        "HF_MODEL_ID": str(config.get("model") or node.model_uri),
        "OPTION_ASYNC_MODE": "true",
        "OPTION_ROLLING_BATCH": "disable",
        "OPTION_ENTRYPOINT": "djl_python.lmi_vllm.vllm_async_service",
        "OPTION_TENSOR_PARALLEL_DEGREE": str(max(1, node.accelerator_count)),
        "OPTION_MAX_ROLLING_BATCH_SIZE": str(VLLM_DEFAULT_MAX_NUM_SEQS),
    }
    if config.get("enable-lora") is True:
        env["OPTION_MAX_LORAS"] = "1"
    if adapter_prefix(node) is not None:
        # LMI registers the adapters/ folder only with LoRA on (lowering sets it; kept explicit).
        env["OPTION_ENABLE_LORA"] = "true"
    for key in sorted(config):
        value = config[key]
        if key in _DROPPED or value is None:
            continue
        name = _RENAMED.get(key, key.replace("-", "_").upper())
        env[f"OPTION_{name}"] = _env_value(value)
    if node.probes.get("startup"):
        # LMI's own loading timeout matches the startup budget (its docs: health check >= it).
        env["OPTION_MODEL_LOADING_TIMEOUT"] = str(startup_timeout(node))
    for e in node.env_vars:  # literal env; secrets are refused by check
        if e.secret is None and e.value is not None:
            env[e.name] = e.value
    return env


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:10]


def _name(base: str, suffix: str = "") -> str:
    """A SageMaker resource name (<= 63 chars, [a-zA-Z0-9-]) ending in `suffix` when given."""
    cleaned = "".join(c if c.isalnum() else "-" for c in base).strip("-")
    room = 63 - (len(suffix) + 1 if suffix else 0)
    cleaned = cleaned[:room].rstrip("-")
    return f"{cleaned}-{suffix}" if suffix else cleaned


def endpoint_name(node: Serving) -> str:
    """The endpoint's name (what CreateEndpoint gets and CloudWatch's EndpointName dimension reads)."""
    return _name(f"{node.name}-{node.env}")


def sagemaker_tags(node: Serving) -> list[dict[str, str]]:
    """SageMaker's own tags (not Kubernetes labels): the spec's labels and what specops serves."""
    tags = dict(node.labels)
    tags.update({"specops:serving-target": node.name, "specops:model": node.model, "specops:engine": node.engine})
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def endpoint_requests(node: Serving, serve_config_yaml: bytes | None) -> dict[str, dict[str, Any]]:
    """The request dicts (boto3 keyword arguments), keyed by API operation name: CreateModel,
    CreateEndpointConfig, CreateEndpoint, and RegisterScalableTarget + PutScalingPolicy
    (application-autoscaling) when the endpoint can grow."""
    region = node.target.region or ""
    tags = sagemaker_tags(node)
    # The gates go on the endpoint only: the model and config names hash their content, and a
    # gate change is no reason to replace them. Tag values allow no commas.
    gate_tags = [{"Key": k, "Value": v.replace(",", " ")} for k, v in k8s.annotations(node).items()]
    base = f"{node.name}-{node.env}"
    if node.engine == "mlserver":
        code = sklearn_container.sourcedir(node)
        primary = sklearn_container.container(node, node.image if _is_ecr(node.image) else None,
                                              sklearn_container.sourcedir_uri(node, code))
    else:
        config = k8s.load_serve_config(serve_config_yaml or k8s.default_serve_config(node))
        image = node.image if _is_ecr(node.image) else lmi_image(region)
        primary = {"Environment": lmi_environment(node, config), "Image": image, "Mode": "SingleModel"}
        prefix = adapter_prefix(node)
        if prefix is not None:
            primary["ModelDataSource"] = {"S3DataSource": {
                "CompressionType": "None", "S3DataType": "S3Prefix", "S3Uri": prefix}}
    model = {
        "ExecutionRoleArn": node.target.role_arn or "",
        "PrimaryContainer": primary,
        "Tags": tags,
    }
    model["ModelName"] = _name(base, _hash(model))

    variant: dict[str, Any] = {
        "ContainerStartupHealthCheckTimeoutInSeconds": startup_timeout(node),
        "InitialInstanceCount": max(1, node.replicas_min),
        "InitialVariantWeight": 1.0,
        "InstanceType": node.instance_type or "",
        "ModelDataDownloadTimeoutInSeconds": startup_timeout(node),
        "ModelName": model["ModelName"],
        "VariantName": VARIANT,
    }
    endpoint_config = {"ProductionVariants": [variant], "Tags": tags}
    endpoint_config["EndpointConfigName"] = _name(base, _hash(endpoint_config))

    endpoint: dict[str, Any] = {
        "EndpointConfigName": endpoint_config["EndpointConfigName"],
        "EndpointName": endpoint_name(node),
        "Tags": sorted(tags + gate_tags, key=lambda t: t["Key"]),
    }
    if node.canary_percent > 0:
        endpoint["DeploymentConfig"] = {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": node.canary_percent},
                "Type": "CANARY",
                "WaitIntervalInSeconds": CANARY_WAIT_S,
            },
        }}
    return {"CreateModel": model, "CreateEndpointConfig": endpoint_config, "CreateEndpoint": endpoint,
            **autoscaling.scaling_requests(node, endpoint["EndpointName"], VARIANT)}


def emit(node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
    """`{"endpoint.json": bytes}`: the requests, sorted keys, 2-space indent; for a classical
    model also `sourcedir.tar.gz`, the container's user module the provider uploads; with
    adapters LMI can load, `adapters.json`, the copy plan the provider runs first."""
    if serve_config_yaml is None and node.engine != "mlserver":
        serve_config_yaml = k8s.default_serve_config(node)
    doc = endpoint_requests(node, serve_config_yaml)
    out = {"endpoint.json": (jsonfmt.pretty(doc) + "\n").encode("utf-8")}
    if node.engine == "mlserver":
        out[sklearn_container.SOURCEDIR] = sklearn_container.sourcedir(node)
    elif adapter_copies(node):
        out[ADAPTERS_FILE] = (jsonfmt.pretty({"Copies": adapter_copies(node)}) + "\n").encode("utf-8")
    return out


def validate_requests(requests: dict[str, dict[str, Any]], region: str = "us-east-1") -> list[str]:
    """Offline check of each request against botocore's SageMaker (and, for the scaling
    requests, application-autoscaling) service model.

    Uses botocore's own parameter validation (unknown keys, missing required keys, types,
    ranges it knows); returns one line per problem, empty when all are valid.
    """
    import botocore.session  # lazy: heavy SDK
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    session = botocore.session.get_session()
    models = {"sagemaker": session.get_service_model("sagemaker"),
              "application-autoscaling": session.get_service_model("application-autoscaling")}
    errors: list[str] = []
    for op, params in requests.items():
        model = models["application-autoscaling" if op in ("RegisterScalableTarget", "PutScalingPolicy")
                       else "sagemaker"]
        try:
            validate_parameters(params, model.operation_model(op).input_shape)
        except ParamValidationError as exc:
            errors.append(f"{op}: {exc.kwargs.get('report', exc)}")
    return errors
