"""Eval gates: thresholds parse, and metrics apply to the kind of model evaluated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specops.checks.common import at, offset_pos
from specops.diagnostics import Diagnostic, Diagnostics
from specops.runtime.thresholds import parse_threshold

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView

CLASSICAL_METRICS = {"auc", "accuracy", "f1", "precision", "recall", "logloss", "pr_auc", "rmse", "mse", "mae",
                     "mape", "r2"}
LLM_METRICS = {"rougeL", "rouge1", "exact_match", "latency_p50_ms", "latency_p95_ms"}


def check_gate(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    if spec.model is None and spec.prompt is None:
        out.add(at(node, (), "missing-field", "an EvalGate needs `model`, `prompt` or both", prefer_key=True))
    model = view.get("Model", spec.model) if spec.model else None
    for i, m in enumerate(spec.metrics):
        try:
            parse_threshold(m.threshold)
        except ValueError as e:
            reason = getattr(e, "reason", None)
            msg = f"invalid threshold '{m.threshold}': {reason}" if reason else str(e)
            out.add(Diagnostic("error", "threshold", msg, node.file,
                               offset_pos(node, ("metrics", i, "threshold"), getattr(e, "offset", None))))
        if model is not None:
            allowed = CLASSICAL_METRICS if model.spec.type == "classical" else LLM_METRICS
            if m.metric not in allowed:
                out.add(at(node, ("metrics", i, "metric"), "value",
                            f"metric '{m.metric}' does not apply to {model.spec.type} model '{model.name}'; "
                            f"use one of {', '.join(sorted(allowed))}"))


