"""ServingTarget: a model served by vLLM on GPUs, per environment."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .common import Accelerator, ImageRef, InstanceType, Name, Ref, Secret, SecretKeyRef, SpecModel

# Kubernetes quantities ("8", "500m", "16Gi", "1.5"): checked here so a typo is an error at its
# line, not a rejected manifest after merge.
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _quantity(v: str | int | float) -> str:
    text = str(v)
    if isinstance(v, bool) or not _QUANTITY.match(text):
        raise PydanticCustomError("value", "'{q}' is not a Kubernetes quantity (e.g. 8, 500m, 16Gi)", {"q": text})
    return text


Quantity = Annotated[str | int | float, AfterValidator(_quantity)]


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class EngineArgs(BaseModel):
    """vLLM serve flags, spelled exactly as vLLM spells them (kebab-case).

    The knobs that matter are typed here; any other key is kept and checked by the resolver
    against the flag list of the chosen vLLM version (an unknown or abbreviated flag is an
    error at its line, never passed through).
    """

    model_config = ConfigDict(extra="allow", strict=True, alias_generator=_kebab,
                              populate_by_name=False, frozen=True)

    tensor_parallel_size: int | None = Field(default=None, ge=1)
    pipeline_parallel_size: int | None = Field(default=None, ge=1)
    data_parallel_size: int | None = Field(default=None, ge=1)
    max_model_len: int | None = Field(default=None, ge=16)
    gpu_memory_utilization: float | None = Field(default=None, gt=0.0, le=1.0)
    max_num_seqs: int | None = Field(default=None, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    enable_lora: bool | None = None
    max_loras: int | None = Field(default=None, ge=1)
    max_lora_rank: int | None = Field(default=None, ge=1)
    speculative_config: dict[str, Any] | None = None


class Engine(SpecModel):
    # vllm serves LLMs; mlserver serves classical models (Open Inference / V2 protocol).
    # Default: by the served model's type.
    name: Literal["vllm", "mlserver"] | None = None
    # vLLM version the args are checked against; defaults to the Project's.
    version: str | None = None
    args: EngineArgs = Field(default_factory=EngineArgs)
    # MLServer inference runtime; default: the one matching the model's flavour (its
    # algorithm's library; scikit-learn for a model with categorical features, whose
    # preprocessing pipeline only the scikit-learn runtime loads).
    runtime: Literal["sklearn", "xgboost", "lightgbm"] | None = None


class AutoscaleTarget(SpecModel):
    """What autoscaling tracks per replica: in-flight requests, requests per second, or CPU
    utilisation (percent)."""

    metric: Literal["concurrency", "rps", "cpu"]
    value: int = Field(ge=1)


class Replicas(SpecModel):
    # The instance count (Azure ML's instance_count, SageMaker's InitialInstanceCount).
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=1)
    # Autoscaling between min and max (max > min) tracks this per-replica target.
    target: AutoscaleTarget | None = None


class RequestSettings(SpecModel):
    """Per-request limits of the server (Azure ML's request_settings)."""

    request_timeout_ms: int | None = Field(default=None, ge=1, le=3_600_000)
    max_concurrent_requests_per_instance: int | None = Field(default=None, ge=1, le=10_000)


class Auth(SpecModel):
    """Who may call the endpoint: a static key or a bearer token, kept in a secret store."""

    mode: Literal["key", "token"]
    secret_ref: SecretKeyRef


class Canary(SpecModel):
    traffic: int = Field(default=0, ge=0, le=100)


class CpuMemory(SpecModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class PodResources(SpecModel):
    """CPU and memory of one serving replica (the GPUs come from `accelerator`)."""

    requests: CpuMemory = Field(default_factory=CpuMemory)
    limits: CpuMemory = Field(default_factory=CpuMemory)


class EnvVar(SpecModel):
    """An environment variable of the server: a literal `value`, or a secret by `secretRef`."""

    name: str
    value: str | None = None
    secret_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _one(self) -> "EnvVar":
        if not _ENV_NAME.match(self.name):
            raise PydanticCustomError("value", "'{n}' is not an environment variable name", {"n": self.name})
        if (self.value is None) == (self.secret_ref is None):
            raise PydanticCustomError("value", "give `value` or `secretRef` (exactly one)")
        return self


class ModelCache(SpecModel):
    """The volume the weights are downloaded to (the Hugging Face cache)."""

    enabled: bool = True
    size: Quantity = "200Gi"
    # Default: ReadWriteOnce for one replica, ReadWriteMany for several.
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] | None = None
    storage_class: str | None = None


class Toleration(SpecModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Placement(SpecModel):
    # Merged over the GPU type's node label (yours win on a clash).
    node_selector: dict[str, str] = Field(default_factory=dict)
    # Added to the GPU toleration.
    tolerations: list[Toleration] = Field(default_factory=list)
    # A Kubernetes Affinity object as written (validated against the Kubernetes schema).
    affinity: dict[str, Any] | None = None


class Probe(SpecModel):
    # Default: the engine's health path (vLLM /health; MLServer /v2/health/ready for startup and
    # readiness, /v2/health/live for liveness).
    path: str | None = None
    initial_delay_seconds: int | None = Field(default=None, ge=0)
    period_seconds: int | None = Field(default=None, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=1)
    failure_threshold: int | None = Field(default=None, ge=1)
    success_threshold: int | None = Field(default=None, ge=1)


class Probes(SpecModel):
    startup: Probe | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None


class ServingTargetSpec(SpecModel, defer_build=True):
    model: Ref
    # LoRA fine-tuned Models served as adapters on the base.
    adapters: list[Ref] = Field(default_factory=list)
    engine: Engine = Field(default_factory=Engine)
    # GPUs of one replica (vLLM); a classical model served by MLServer runs on CPU.
    accelerator: Accelerator | None = None
    replicas: Replicas = Field(default_factory=Replicas)
    canary: Canary = Field(default_factory=Canary)
    # Gates that must have passed for the model version before it is served.
    gates: list[Ref] = Field(default_factory=list)
    # SageMaker endpoint instance type (when the target serves on SageMaker).
    instance_type: InstanceType | None = None
    image: ImageRef | None = None
    # Hugging Face token for gated weights. Only secret references.
    hf_token: Secret | None = None
    # Overrides the target's serving platform (a name in the backend registry).
    platform: Name | None = None
    # Pod shape (Kubernetes, KServe, production-stack; SageMaker reports what it cannot carry).
    resources: PodResources | None = None
    env: list[EnvVar] = Field(default_factory=list)
    # /dev/shm size (tensor-parallel workers exchange tensors through it).
    shm_size: Quantity | None = None
    model_cache: ModelCache | None = None
    placement: Placement | None = None
    # Default: Recreate when a replica holds several GPUs (a rolling update would wait for GPUs
    # the old pod still holds), else the platform's.
    strategy: Literal["Recreate", "RollingUpdate"] | None = None
    probes: Probes | None = None
    # production-stack: the Helm release this target joins; targets of one release share one
    # values file (and its servingEngineSpec-wide keys: strategy, probes). Default: its own.
    release: Name | None = None
    # Request timeout and concurrency per replica.
    request_settings: RequestSettings | None = None
    # Endpoint authentication.
    auth: Auth | None = None
