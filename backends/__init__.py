"""Backends: one module per target format, each with the same small surface.

Pipeline backends (see base.PipelineBackend): `kfp`, `sagemaker`, `zenml`.
Serving platforms: `kubernetes`, `kserve`, `helm` (vLLM production-stack values),
`sagemaker` (endpoint requests), all reached through `kubernetes.emit_deployment` /
`check_deployment`; the vLLM serve config itself comes from `vllm`.

Modules are imported on first use so the CLI starts fast; third-party pipeline backends
register through the `specops.backends` entry-point group.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PIPELINE_BACKENDS: dict[str, str] = {
    "kfp": "specops.backends.kfp",
    "sagemaker": "specops.backends.sagemaker",
    "zenml": "specops.backends.zenml",
}


def pipeline_backend(name: str) -> ModuleType:
    """The pipeline backend module for a target's `backend`."""
    if name in PIPELINE_BACKENDS:
        return importlib.import_module(PIPELINE_BACKENDS[name])
    from importlib.metadata import entry_points

    for ep in entry_points(group="specops.backends"):
        if ep.name == name:
            return ep.load()
    raise KeyError(name)
