"""Serving targets of classical models: MLServer, its runtime, and what it cannot take."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specops.checks.common import at
from specops.diagnostics import Diagnostics
from specops.ir.classical import native_export
from specops.ir.lower import engine_args_as_written

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView


def check_classical_serving(view: "EnvView", node: "Node", model: "Node | None", out: Diagnostics) -> None:
    spec = node.spec
    if model is not None and model.spec.type == "llm":
        out.add(at(node, ("engine", "name"), "value", f"model '{model.name}' is an LLM; MLServer serves classical "
                   "models (vLLM serves LLMs)"))
        return
    if spec.accelerator is not None:
        out.add(at(node, ("accelerator",), "unsupported", "MLServer serves classical models on CPU: drop "
                   "`accelerator` (size the replica with `resources`, or `instanceType` on SageMaker)"))
    if engine_args_as_written(node):
        out.add(at(node, ("engine", "args"), "unsupported", "`engine.args` are vLLM serve flags; MLServer takes none"))
    for i, _ in enumerate(spec.adapters):
        out.add(at(node, ("adapters", i), "unsupported", "adapters are LoRA weights for vLLM; a classical model "
                   "has none"))
    if spec.hf_token is not None:
        out.add(at(node, ("hfToken",), "unsupported", "a Hugging Face token is for LLM weights; MLServer loads "
                   "the registered model"))
    runtime = spec.engine.runtime
    if model is not None and runtime in ("xgboost", "lightgbm") and native_export(view, model) != runtime:
        out.add(at(node, ("engine", "runtime"), "value",
                   f"the {runtime} runtime serves a {runtime} booster, which the train step exports for a "
                   f"{runtime} model on declared numeric features only; '{model.name}' is served by the "
                   "sklearn runtime (drop `runtime`)"))
