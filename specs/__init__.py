"""The spec language: one pydantic model per kind, of the YAML as written."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from .common import API_VERSION, envelope_model

KINDS = ("Project", "Dataset", "Model", "Prompt", "EvalGate", "ServingTarget", "Rule", "Monitor")


@cache
def spec_models() -> dict[str, Any]:
    """kind -> the model (or annotated union) of its `spec` block."""
    from .dataset import DatasetSpec
    from .evalgate import EvalGateSpec
    from .model import ModelSpec
    from .monitor import MonitorSpec
    from .project import ProjectSpec
    from .prompt import PromptSpec
    from .rule import RuleSpec
    from .serving import ServingTargetSpec

    return {"Project": ProjectSpec, "Dataset": DatasetSpec, "Model": ModelSpec,
            "Prompt": PromptSpec, "EvalGate": EvalGateSpec, "ServingTarget": ServingTargetSpec,
            "Rule": RuleSpec, "Monitor": MonitorSpec}


@cache
def document_model(kind: str) -> type[BaseModel]:
    """The whole-document model (envelope + spec) of a kind."""
    return envelope_model(kind, spec_models()[kind])


__all__ = ["API_VERSION", "KINDS", "document_model", "spec_models"]
