"""The `local` serving platform of the embedded default target: nothing to deploy.

The vLLM serve config (`vllm.yaml`) is the whole artifact; `vllm serve --config` runs it on the
developer's machine. There is no live object, so no resource type and no provider.
"""

from __future__ import annotations

from specops.diagnostics import Diagnostic
from specops.ir import Serving

NAME = "local"
FORMAT = "none: the vLLM serve config alone, served in-process or by `vllm serve --config`"
ARTIFACT_BACKEND = "local"
RESOURCE_TYPE: str | None = None
PROVIDER: str | None = None


def check(node: Serving, serve_config_yaml: bytes | None = None) -> list[Diagnostic]:
    return []


def emit(node: Serving, serve_config_yaml: bytes | None = None) -> dict[str, bytes]:
    return {}
