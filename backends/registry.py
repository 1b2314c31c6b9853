"""The one registry of backends, in the style of pre-commit's `all_languages.py`: a typed
dict of pipeline backends and one of serving platforms, each entry a module with the same
small surface (the Protocols below). Everything else is derived from here: the values a
Project may name (checked by `specops.checks`), the plan/apply resource types, and which
provider module manages each type. Model registries (MLflow) are a third dict: they keep the
`prompt` and `registered_model` resources. A fourth, ALERTING, holds a Monitor's alerting
outputs that are live objects (CloudWatch alarms, the PrometheusRule).

Adding a built-in backend is one module plus one line below. Third-party ones come through
entry points, scanned only when a name is not built in (never on `specops --help`):

    [project.entry-points."specops.backends"]    # pipeline backends: name = module
    [project.entry-points."specops.serving"]     # serving platforms: name = module
    [project.entry-points."specops.providers"]   # extra resource types: type = module
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Protocol, cast

from specops.backends import (
    cloudwatch,
    helm_stack,
    kfp,
    kserve,
    kubernetes,
    local_serving,
    mlflow,
    prometheus,
    sagemaker,
    sagemaker_endpoint,
    zenml,
)
from specops.diagnostics import Diagnostic
from specops.ir import Pipeline, Serving


class PipelineBackend(Protocol):
    NAME: str  # the Project's `backend:` value and the build folder (build/<env>/<NAME>/)
    FORMAT: str  # what it emits, with the format's version
    RESOURCE_TYPE: str  # the plan/apply address type of one compiled pipeline
    PROVIDER: str  # module whose `provider()` talks to the live orchestrator
    RUNS_ON_APPLY: bool  # apply runs the pipeline, so its gate verdicts exist when apply ends

    def check(self, pipeline: Pipeline) -> list[Diagnostic]:
        """What this backend cannot express, as diagnostics at the spec's position."""
        ...

    def emit(self, pipeline: Pipeline) -> dict[str, bytes]:
        """File path under build/<env>/<NAME>/<pipeline>/ -> bytes; byte-identical for identical input."""
        ...

    # Optional: `unused_target_fields(target) -> {attribute: why}`, the Project target fields
    # this backend cannot deliver for that target (specops.checks.targets warns at their line).
    # Optional: `can_schedule(pipeline) -> bool`, False where the target's orchestrator runs no
    # schedules (ZenML's local one); a scheduled Monitor then gets a crontab line instead of a job.


class ServingPlatform(Protocol):
    NAME: str  # the Project's `serving.platform` (or a ServingTarget's `platform`) value
    FORMAT: str
    ARTIFACT_BACKEND: str  # the manifest's `backend` for this platform's files
    RESOURCE_TYPE: str | None  # None: nothing live to manage
    PROVIDER: str | None

    def check(self, node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]: ...

    def emit(self, node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
        """File name under build/<env>/serving/<name>/ -> bytes."""
        ...


class ModelRegistry(Protocol):
    NAME: str  # a target's `registry.provider` value
    FORMAT: str
    RESOURCE_TYPES: tuple[str, ...]  # the plan/apply resource types it keeps (prompts, model aliases)
    PROVIDER: str  # module whose `provider()` manages them


class AlertingOutput(Protocol):
    """A Monitor's alerting files (role `monitor`, manifest backend = the ALERTING key) that are live."""

    RESOURCE_TYPE: str  # the plan/apply type of the files below
    PROVIDER: str
    RESOURCE_FILES: tuple[str, ...]  # which of its files are the live object (others are for people)

    def resource_name(self, monitor: str) -> str: ...


PIPELINE_BACKENDS: dict[str, PipelineBackend] = {
    "kfp": cast(PipelineBackend, kfp),
    "sagemaker": cast(PipelineBackend, sagemaker),
    "zenml": cast(PipelineBackend, zenml),
}

SERVING_PLATFORMS: dict[str, ServingPlatform] = {
    "local": cast(ServingPlatform, local_serving),
    "kubernetes": cast(ServingPlatform, kubernetes),
    "kserve": cast(ServingPlatform, kserve),
    "helm": cast(ServingPlatform, helm_stack),
    "sagemaker": cast(ServingPlatform, sagemaker_endpoint),
}

# Where model versions, their aliases and prompts live (a target's `registry.provider`).
MODEL_REGISTRIES: dict[str, ModelRegistry] = {
    "mlflow": cast(ModelRegistry, mlflow),
}


# A Monitor's serving SLOs: CloudWatch alarms on SageMaker endpoints, a PrometheusRule on Kubernetes.
ALERTING: dict[str, AlertingOutput] = {
    "cloudwatch": cast(AlertingOutput, cloudwatch),
    "prometheus": cast(AlertingOutput, prometheus),
}


class UnknownBackend(KeyError):
    """A name that is neither built in nor registered by an installed plugin."""


@cache
def _entry_points(group: str) -> dict[str, object]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


def _plugin(group: str, name: str) -> ModuleType:
    ep = _entry_points(group).get(name)
    if ep is None:
        raise UnknownBackend(name)
    loaded = ep.load()  # type: ignore[attr-defined]
    return loaded if isinstance(loaded, ModuleType) else importlib.import_module(ep.value)  # type: ignore[attr-defined]


def pipeline_backend(name: str) -> PipelineBackend:
    """The pipeline backend module for a target's `backend`."""
    if name in PIPELINE_BACKENDS:
        return PIPELINE_BACKENDS[name]
    return cast(PipelineBackend, _plugin("specops.backends", name))


def serving_platform(name: str) -> ServingPlatform:
    if name in SERVING_PLATFORMS:
        return SERVING_PLATFORMS[name]
    return cast(ServingPlatform, _plugin("specops.serving", name))


def pipeline_backend_names() -> list[str]:
    """Built-in and installed plug-in backends (scans entry points)."""
    return sorted(set(PIPELINE_BACKENDS) | set(_entry_points("specops.backends")))


def serving_platform_names() -> list[str]:
    return sorted(set(SERVING_PLATFORMS) | set(_entry_points("specops.serving")))


def serving_resource_types() -> dict[str, str]:
    """Built-in serving platform -> the resource type plan/apply manage for it."""
    return {name: m.RESOURCE_TYPE for name, m in SERVING_PLATFORMS.items() if m.RESOURCE_TYPE}


def platform_of_artifact_backend(artifact_backend: str) -> ServingPlatform | None:
    """The serving platform whose files carry this manifest `backend` value."""
    for m in SERVING_PLATFORMS.values():
        if m.ARTIFACT_BACKEND == artifact_backend:
            return m
    return None


def runs_on_apply(resource_type: str) -> bool:
    """Whether applying a resource of this type runs its pipeline (and so decides its gates)."""
    return any(m.RESOURCE_TYPE == resource_type and m.RUNS_ON_APPLY for m in PIPELINE_BACKENDS.values())


def provider_module(resource_type: str) -> str:
    """The module that provides plan/apply for a resource type."""
    for m in PIPELINE_BACKENDS.values():
        if m.RESOURCE_TYPE == resource_type:
            return m.PROVIDER
    for p in SERVING_PLATFORMS.values():
        if p.RESOURCE_TYPE == resource_type and p.PROVIDER:
            return p.PROVIDER
    for r in MODEL_REGISTRIES.values():
        if resource_type in r.RESOURCE_TYPES:
            return r.PROVIDER
    for a in ALERTING.values():
        if a.RESOURCE_TYPE == resource_type:
            return a.PROVIDER
    ep = _entry_points("specops.providers").get(resource_type)
    if ep is not None:
        return ep.value  # type: ignore[attr-defined]
    for group in ("specops.backends", "specops.serving"):
        for name in _entry_points(group):
            m = _plugin(group, name)
            if getattr(m, "RESOURCE_TYPE", None) == resource_type and getattr(m, "PROVIDER", None):
                return m.PROVIDER  # type: ignore[attr-defined]
    raise UnknownBackend(resource_type)
