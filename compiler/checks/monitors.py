"""Monitor checks: the columns a monitor names exist in the data it reads, its metrics and
assertions are ones the monitor runtime computes, and its thresholds are absolute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from specops.checks.common import at
from specops.diagnostics import Diagnostics, suggestion
from specops.ir.monitors import job_name
from specops.runtime.assertions import validate
from specops.runtime.errors import ParamError
from specops.runtime.monitor import QUALITY_METRICS
from specops.runtime.thresholds import ThresholdError, parse_threshold

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved


def _columns_of(view: "EnvView", dataset: str | None) -> list[str] | None:
    ds = view.get("Dataset", dataset) if dataset else None
    return [c.name for c in ds.spec.columns] if ds is not None and ds.spec.columns else None


def _need(node: "Node", path: tuple, column: str | None, have: list[str] | None, what: str, out: Diagnostics,
          severity: str = "error") -> None:
    if column is not None and have is not None and column not in have:
        out.add(at(node, path, "monitor", f"column '{column}' is not a column of {what}" + suggestion(column, have),
                   severity=severity))


def check_monitor(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    s = node.spec
    w, c = s.watch, s.checks
    if s.schedule is not None and view.get("Model", job_name(node.name)) is not None:
        # Its scheduled job is pipeline `monitor-<name>`: the same resource and live pipeline as that Model's.
        out.add(at(node, ("schedule",), "duplicate-name", f"monitor '{node.name}' schedules pipeline "
                   f"'{job_name(node.name)}', which is also a Model's name; rename one of them"))
    model = view.get("Model", w.model) if w.model else None
    if w.inputs is not None:
        cur = _columns_of(view, w.inputs.dataset)
        ref_ds = w.reference.dataset if w.reference is not None else (
            model.spec.datasets[0].dataset if model is not None and model.spec.datasets else None)
        ref = _columns_of(view, ref_ds)
        for i, col in enumerate(w.columns):
            _need(node, ("watch", "columns", i), col, cur, f"Dataset '{w.inputs.dataset}'", out)
            _need(node, ("watch", "columns", i), col, ref, f"the reference Dataset '{ref_ds}'", out)
        watched = list(w.columns) or list(getattr(getattr(model, "spec", None), "classical", None) and
                                          model.spec.classical.features or []) or None
        if c.drift is not None:
            for col in c.drift.columns:
                # A warning: the watched columns follow the model's features, which may move on.
                _need(node, ("checks", "drift", "columns", col), col, watched, "the watched columns (this "
                      "setting is not used)", out, severity="warning")
    if w.feedback is not None:
        have = _columns_of(view, w.feedback.dataset)
        for key in ("label_column", "prediction_column", "score_column"):
            camel = "".join(p if i == 0 else p.title() for i, p in enumerate(key.split("_")))
            _need(node, ("watch", "feedback", camel), getattr(w.feedback, key), have,
                  f"Dataset '{w.feedback.dataset}'", out)
    if w.traffic is not None:
        _need(node, ("watch", "traffic", "responseColumn"), w.traffic.response_column,
              _columns_of(view, w.traffic.dataset), f"Dataset '{w.traffic.dataset}'", out)
    for i, m in enumerate(c.quality):
        if m.metric not in QUALITY_METRICS:
            out.add(at(node, ("checks", "quality", i, "metric"), "monitor", f"a monitor computes "
                       f"{', '.join(QUALITY_METRICS)} from feedback, not '{m.metric}'"
                       + suggestion(m.metric, QUALITY_METRICS)))
        if m.metric == "auc" and w.feedback is not None and w.feedback.score_column is None:
            out.add(at(node, ("checks", "quality", i, "metric"), "monitor",
                       "auc needs the predicted scores: set watch.feedback.scoreColumn"))
        try:
            if parse_threshold(m.threshold).relative:
                out.add(at(node, ("checks", "quality", i, "threshold"), "threshold",
                           "a monitor's thresholds are absolute: there is no baseline to compare with"))
        except ThresholdError as e:
            out.add(at(node, ("checks", "quality", i, "threshold"), "threshold", str(e)))
    if c.llm is not None:
        _check_assertions(node, c.llm.assertions, out)
    declared = resolved.project.notifications
    for i, n in enumerate(s.on_breach.notify):
        if n not in declared:
            out.add(at(node, ("onBreach", "notify", i), "unresolved-ref", f"unknown notifier '{n}' (the Project's "
                       "spec.notifications)" + suggestion(n, declared)))
        elif "breach" not in declared[n].events:
            out.add(at(node, ("onBreach", "notify", i), "monitor", f"notifier '{n}' does not take `breach` events "
                       "(its events: " + ", ".join(declared[n].events) + ")", severity="warning"))


def _check_assertions(node: "Node", assertions: list[Any], out: Diagnostics) -> None:
    for i, a in enumerate(assertions):
        d = a.model_dump(mode="json", exclude_none=True)
        path = ("checks", "llm", "assertions", i)
        try:
            validate(d, f"assertion {i + 1}")
        except ParamError as e:
            out.add(at(node, path, "monitor", str(e)))
        base = d["type"].removeprefix("not-")
        if base in ("similar", "llm-rubric", "latency"):
            out.add(at(node, path + ("type",), "unsupported", f"a monitor judges logged responses offline: "
                       f"'{d['type']}' needs an embedding model, a judge or request timings (eval gates only)"))
        for key in ("weight", "metric"):
            if key in a.model_fields_set:
                out.add(at(node, path + (key,), "unsupported", f"`{key}` has no effect in a monitor: a sampled "
                           "response passes when every assertion passes", severity="warning"))
