"""The surface every pipeline backend module has (pre-commit style: modules, not classes).

A backend module exposes:

    NAME: str                                   # "kfp" | "sagemaker" | "zenml"
    FORMAT: str                                 # what and which version it emits
    def check(pipeline: ir.Pipeline) -> list[Diagnostic]
        # what this backend cannot express, as diagnostics at the spec's position
    def emit(pipeline: ir.Pipeline) -> dict[str, bytes]
        # relative path (posix, under build/<env>/<backend>/) -> file bytes; byte-identical
        # for identical input; the CLI writes them, tests read them without temp dirs

Providers for plan/apply (the live system) come later, in the same module.
"""

from __future__ import annotations

from typing import Protocol

from specops.diagnostics import Diagnostic
from specops.ir import Pipeline


class PipelineBackend(Protocol):
    NAME: str
    FORMAT: str

    def check(self, pipeline: Pipeline) -> list[Diagnostic]: ...

    def emit(self, pipeline: Pipeline) -> dict[str, bytes]: ...
