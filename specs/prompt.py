"""Prompt: a versioned template (text or chat messages) with typed variables and labels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Name, PromptLabel, Ref, SpecModel


class Message(SpecModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Variable(SpecModel):
    type: Literal["string", "int", "float", "bool", "list"] = "string"
    required: bool = True
    default: str | int | float | bool | list[str] | None = None
    description: str | None = None


class Generation(SpecModel):
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] = Field(default_factory=list)


class PromptSpec(SpecModel, defer_build=True):
    # The Model the prompt is written for.
    model: Ref
    # Monotonic version; bump it when the template changes.
    version: int = Field(ge=1)
    # Exactly one of template / messages. Jinja2 syntax, rendered in a sandbox.
    template: str | None = None
    messages: list[Message] | None = None
    variables: dict[str, Variable] = Field(default_factory=dict)
    parameters: Generation = Field(default_factory=Generation)
    # Labels per environment (Langfuse style: production, latest...), set by apply.
    labels: dict[Name, list[PromptLabel]] = Field(default_factory=dict)
