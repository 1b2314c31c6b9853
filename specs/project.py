"""Project: the repo root's `specops.yaml` — targets, environments, state, defaults."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from .common import (
    GcpProject,
    ImageRef,
    ImageRepo,
    KeyPrefix,
    Name,
    Region,
    RepoPath,
    RoleArn,
    S3Bucket,
    Secret,
    SpecModel,
    Uri,
)


class ServingPlatform(SpecModel):
    # A serving platform of the backend registry: local, kubernetes, kserve, helm, sagemaker,
    # or one a plug-in registers (checked by specops.checks against the registry).
    platform: Name = "local"
    # Kubernetes namespace (kubernetes/kserve/helm).
    namespace: Name = "default"
    # Where rendered manifests go for Argo CD / Flux to sync (repo-relative or a git URL).
    gitops_dir: str | None = None


def _check_tracking_uri(v: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#@]+(?::\d{1,5})?(/[^\s?#]*)?", v):
        raise PydanticCustomError(
            "value", "'{uri}' is not an MLflow tracking server URL (http(s)://host[:port][/path]; credentials go "
            "in `token`, never in the URL)", {"uri": v if len(v) <= 80 else v[:80] + "…"})
    return v


class ModelRegistry(SpecModel):
    """Where model versions, prompts and runs are kept: a model registry of the backend registry."""

    # The registry provider (backends.registry.MODEL_REGISTRIES): mlflow.
    provider: Literal["mlflow"] = "mlflow"
    # An MLflow tracking server (http(s)); absent: the embedded store, SQLite under
    # `.specops/mlflow/` of the spec repo.
    tracking_uri: Annotated[str, AfterValidator(_check_tracking_uri)] | None = None
    # Bearer token for the server (MLFLOW_TRACKING_TOKEN). Only a secret reference.
    token: Secret | None = None


class Target(SpecModel):
    """A named platform: which orchestrator, where, and what GPUs it offers."""

    # A pipeline backend of the backend registry: kfp, sagemaker, zenml, or one a plug-in
    # registers (checked by specops.checks against the registry).
    backend: Name
    provider: Literal["local", "aws", "gcp", "onprem"] = "local"
    region: Region | None = None
    # GCP project id: GOOGLE_CLOUD_PROJECT of every KFP step (and of ZenML's containerised
    # steps), where Google's clients read the project from. Backends that cannot use it say so.
    project: GcpProject | None = None
    # KFP API host, e.g. https://kfp.example.com
    host: Uri | None = None
    artifact_store: Uri = "file://.specops/artifacts"
    # Where this target pulls the runtime image (`defaults.image`) from: a mirror holding it under
    # its own name and tag, `<imageRegistry>/runtime:0.1.0`. Images a step names are used as written.
    image_registry: ImageRepo | None = None
    # SageMaker execution role ARN (not a secret: ARNs are identifiers).
    role_arn: RoleArn | None = None
    serving: ServingPlatform = Field(default_factory=ServingPlatform)
    # GPU types this target can schedule; ServingTargets and training steps must pick one.
    gpus: list[str] = Field(default_factory=list)
    # Credentials for the target's API: the KFP provider's bearer token, read by plan/apply from
    # env, a mounted Kubernetes Secret or AWS Secrets Manager. Only secret references.
    credentials: Secret | None = None
    # The model and prompt registry (and run tracking) this target's environments use.
    registry: ModelRegistry = Field(default_factory=ModelRegistry)


class Policy(SpecModel):
    # Eval gates must pass before models are promoted/served here.
    require_gates: bool = False
    # What `apply` does when the live system drifted: overwrite it, or refuse and report.
    drift: Literal["reconcile", "report"] = "report"
    # Whether `apply` deletes resources the specs no longer declare.
    prune: bool = False
    # Live fields drift detection ignores (known noise), as fnmatch patterns over
    # "<address>/<file>:<field path>", e.g. "k8s_manifests.*/*:metadata.annotations.*".
    ignore_changes: list[str] = Field(default_factory=list)
    # Whether this is a production environment (the built-in rules' "prod"); when absent, an
    # environment named prod or production is one.
    production: bool | None = None
    # Whether datasets marked `pii.contains: true` may be used here (built-in rule pii-only-where-allowed).
    allow_pii: bool = False


class Environment(SpecModel):
    target: Name
    policy: Policy = Field(default_factory=Policy)
    # Deep-merged over the Project's `defaults` in this environment.
    defaults: dict[str, Any] = Field(default_factory=dict)


class StateBackend(SpecModel):
    backend: Literal["local", "s3"] = "local"
    # local: directory (repo-relative) holding one state file per environment.
    path: RepoPath = ".specops/state"
    # s3: bucket/prefix/region; locking by conditional writes.
    bucket: S3Bucket | None = None
    prefix: KeyPrefix | None = None
    region: Region | None = None

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> "StateBackend":
        if self.backend == "s3" and not self.bucket:
            raise PydanticCustomError("missing-field", "state backend 's3' needs `bucket`")
        return self


class Defaults(SpecModel):
    # Image the lifecycle steps run in on a cluster (the specops runtime image).
    image: ImageRef = "ghcr.io/specops-dev/runtime:0.1.0"
    # vLLM version serving configs are checked against.
    vllm_version: str = "0.32.0"
    # vLLM container image for serving.
    serving_image: ImageRef = "vllm/vllm-openai:v0.32.0"
    seed: int = 7


class Rules(SpecModel):
    """The built-in policy rules (each on by default) and how they are switched."""

    # Built-in rules turned off by name: prod-serving-names-gates, no-mutable-images-in-prod,
    # pii-only-where-allowed.
    disable: list[Name] = Field(default_factory=list)


# What a notifier carries (payload field `event`; compiler/schemas/events/notification.schema.json).
NotifyEvent = Literal["apply", "drift", "breach"]


class Webhook(SpecModel):
    # Where the JSON payload is POSTed. Only a secret reference: a webhook URL embeds its token
    # (Slack, Teams, Discord, PagerDuty). Readable at run time from `env`, `kubernetes` (a
    # mounted Secret) or `aws-secrets-manager`.
    url: Secret
    # Optional HMAC-SHA256 key: the body's signature is sent as X-Specops-Signature-256
    # ("sha256=<hex>"), the way GitHub signs its webhooks, so the receiver can verify the sender.
    signing_key: Secret | None = None


class Notifier(SpecModel):
    """One destination for apply results, drift found and monitor breaches."""

    webhook: Webhook
    # The events sent to it (default: all three).
    events: list[NotifyEvent] = Field(default_factory=lambda: ["apply", "drift", "breach"], min_length=1)
    # Only these environments' events (default: every environment).
    environments: list[Name] = Field(default_factory=list)


class ProjectSpec(SpecModel, defer_build=True):
    targets: dict[Name, Target] = Field(min_length=1)
    environments: dict[Name, Environment] = Field(min_length=1)
    state: StateBackend = Field(default_factory=StateBackend)
    defaults: Defaults = Field(default_factory=Defaults)
    rules: Rules = Field(default_factory=Rules)
    # Named notifiers (apply, drift, breach events as one JSON payload); Monitors name them.
    notifications: dict[Name, Notifier] = Field(default_factory=dict)
