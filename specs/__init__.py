"""The spec language: one pydantic model per kind, of the YAML as written."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from .common import API_VERSION, envelope_model

KINDS = ("Project", "Dataset", "Model", "Prompt", "EvalGate", "ServingTarget", "Rule", "Monitor")


@cache
def spec_model(kind: str) -> Any:
    """The model (or annotated union) of one kind's `spec` block. A kind's module is imported,
    and its pydantic classes built, the first time a document of that kind is validated: a
    repo without Monitors never pays for them (~10 ms of CPU a process each for the larger
    kinds)."""
    match kind:
        case "Project":
            from .project import ProjectSpec as model
        case "Dataset":
            from .dataset import DatasetSpec as model
        case "Model":
            from .model import ModelSpec as model
        case "Prompt":
            from .prompt import PromptSpec as model
        case "EvalGate":
            from .evalgate import EvalGateSpec as model
        case "ServingTarget":
            from .serving import ServingTargetSpec as model
        case "Rule":
            from .rule import RuleSpec as model
        case "Monitor":
            from .monitor import MonitorSpec as model
        case _:
            raise KeyError(kind)
    return model


@cache
def document_model(kind: str) -> type[BaseModel]:
    """The whole-document model (envelope + spec) of a kind."""
    return envelope_model(kind, spec_model(kind))


__all__ = ["API_VERSION", "KINDS", "document_model", "spec_model"]
