"""Eval gates: thresholds parse, metrics apply to what is evaluated, and a prompt gate's
assertions, judge and endpoint are well formed.

A prompt gate renders its Prompt for every row of the dataset's split: every variable the
template (or an assertion's value) reads must be a column the dataset declares, or a variable
the Prompt declares with a default. One that is neither is an error at the line that uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from specops.checks.common import at, offset_pos
from specops.checks.prompts import template_pos, template_texts, template_uses
from specops.diagnostics import Diagnostic, Diagnostics, suggestion
from specops.ir.lower import gate_model
from specops.runtime.assertions import NEEDS_SCHEMA, NEEDS_TEXT, NEEDS_TEXTS, TYPES
from specops.runtime.thresholds import parse_threshold

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved

CLASSICAL_METRICS = {"auc", "accuracy", "f1", "precision", "recall", "logloss", "pr_auc", "rmse", "mse", "mae",
                     "mape", "r2"}
LLM_METRICS = {"rougeL", "rouge1", "exact_match", "latency_p50_ms", "latency_p95_ms"}
# What a prompt evaluation measures besides its assertions' named metrics (prompt_eval.py).
PROMPT_METRICS = {"pass_rate", "regression_p_value", "latency_p50_ms", "latency_p95_ms"}
# The dataset column types that can feed a prompt variable of each type.
COLUMN_TYPES_FOR = {"string": {"string", "category", "date", "datetime"}, "int": {"int"}, "float": {"float", "int"},
                    "bool": {"bool"}, "list": set()}
ASSERTION_TYPES = sorted(set(TYPES) | {f"not-{t}" for t, (inv, _) in TYPES.items() if inv})
# (field, key as written) of what only a prompt gate uses.
PROMPT_ONLY = (("assertions", "assertions"), ("endpoint", "endpoint"), ("judge", "judge"), ("repeat", "repeat"),
               ("row_pass_fraction", "rowPassFraction"), ("alpha", "alpha"))


def check_gate(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    if spec.model is None and spec.prompt is None:
        out.add(at(node, (), "missing-field", "an EvalGate needs `model`, `prompt` or both", prefer_key=True))
    for i, m in enumerate(spec.metrics):
        problem = _threshold_problem(m.threshold)
        if problem is not None:
            msg, offset = problem
            out.add(Diagnostic("error", "threshold", msg, node.file,
                               offset_pos(node, ("metrics", i, "threshold"), offset)))
    if spec.prompt is None:
        _check_model_gate(view, node, out)
    else:
        _check_prompt_gate(resolved, view, node, out)


def _threshold_problem(text: str) -> tuple[str, int | None] | None:
    """(message, offset in the text) of a threshold that does not parse, else None."""
    try:
        parse_threshold(text)
    except ValueError as e:
        reason = getattr(e, "reason", None)
        return (f"invalid threshold '{text}': {reason}" if reason else str(e)), getattr(e, "offset", None)
    return None


def _check_model_gate(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    for field, key in PROMPT_ONLY:
        if getattr(spec, field) if field in ("assertions", "endpoint", "judge") else field in spec.model_fields_set:
            out.add(at(node, (key,), "value", f"`{key}` is for prompt gates: name the Prompt to render "
                        "with `prompt`", prefer_key=True))
    model = view.get("Model", spec.model) if spec.model else None
    if model is None:
        return
    allowed = CLASSICAL_METRICS if model.spec.type == "classical" else LLM_METRICS
    for i, m in enumerate(spec.metrics):
        if m.metric not in allowed:
            out.add(at(node, ("metrics", i, "metric"), "value",
                        f"metric '{m.metric}' does not apply to {model.spec.type} model '{model.name}'; "
                        f"use one of {', '.join(sorted(allowed))}" + suggestion(m.metric, allowed)))


def _check_prompt_gate(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    prompt = view.get("Prompt", spec.prompt)
    model = gate_model(view, node)
    if model is not None and model.spec.type != "llm" and spec.endpoint is None:
        out.add(at(node, ("prompt",), "value", f"prompt gate '{node.name}' generates with model '{model.name}', "
                    "which is not an LLM; name an LLM or an `endpoint`"))
    if not spec.assertions:
        out.add(at(node, ("prompt",), "missing-field", "a prompt gate judges each output with `assertions` "
                    "(e.g. `- {type: icontains, value: '{{ expected }}'}`)", prefer_key=True))
    named = set()
    for i, a in enumerate(spec.assertions):
        _check_assertion(node, i, a, out)
        if a.metric:
            named.add(a.metric)
    allowed = PROMPT_METRICS | named
    for i, m in enumerate(spec.metrics):
        if m.metric not in allowed:
            out.add(at(node, ("metrics", i, "metric"), "value",
                        f"metric '{m.metric}' is not measured by prompt gate '{node.name}'; use one of "
                        f"{', '.join(sorted(allowed))} (an assertion's `metric` names a new one)"
                        + suggestion(m.metric, allowed)))
    if any(a.type.removeprefix("not-") == "llm-rubric" for a in spec.assertions) and spec.judge is None:
        i = next(i for i, a in enumerate(spec.assertions) if a.type.removeprefix("not-") == "llm-rubric")
        out.add(at(node, ("assertions", i, "type"), "missing-field", "llm-rubric needs the gate's `judge` "
                    "(`{endpoint: {...}}` or `{model: <llm>}`)"))
    if spec.judge is not None:
        _check_judge(view, node, out)
    for path, ep in (("endpoint",), spec.endpoint), (("judge", "endpoint"), spec.judge.endpoint if spec.judge else None):
        if ep is not None and ep.api_key is not None and ep.api_key.secret_ref.provider != "env":
            out.add(at(node, path + ("apiKey",), "unsupported", "the gate step reads the endpoint's key from an "
                        "environment variable: use `secretRef: {provider: env, name: VAR}`"))
        elif ep is not None and ep.api_key is not None and ep.api_key.secret_ref.key is not None:
            out.add(at(node, path + ("apiKey", "secretRef", "key"), "value", "an environment variable holds one "
                        "value: drop `key` (the variable is `name`)"))
    dataset = view.get("Dataset", spec.dataset)
    if prompt is not None and dataset is not None:
        _check_variables(resolved, node, prompt, dataset, out)


def _check_assertion(node: "Node", i: int, a: Any, out: Diagnostics) -> None:
    base = a.type.removeprefix("not-")
    if a.type not in ASSERTION_TYPES:
        out.add(at(node, ("assertions", i, "type"), "value", f"unknown assertion type '{a.type}'"
                    + suggestion(a.type, ASSERTION_TYPES)))
        return
    v = a.value
    if base in NEEDS_TEXT and not (isinstance(v, (str, int, float)) and not isinstance(v, bool) and v != ""):
        if not (base == "equals" and isinstance(v, (dict, list))):
            out.add(at(node, ("assertions", i), "missing-field", f"{base} needs a text `value`", prefer_key=True))
    elif base in NEEDS_TEXTS and not (isinstance(v, str) and v or isinstance(v, list) and v):
        out.add(at(node, ("assertions", i), "missing-field", f"{base} needs a `value`: a text or a list of texts",
                    prefer_key=True))
    elif base in NEEDS_SCHEMA | {"llm-rubric"} and v in (None, "", [], {}):
        what = "a JSON schema" if base in NEEDS_SCHEMA else "the rubric"
        out.add(at(node, ("assertions", i), "missing-field", f"{base} needs a `value`: {what}", prefer_key=True))
    if base == "latency" and a.threshold is None:
        out.add(at(node, ("assertions", i), "missing-field", "latency needs a `threshold` in milliseconds",
                    prefer_key=True))


def _check_judge(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    j = node.spec.judge
    if (j.endpoint is None) == (j.model is None):
        out.add(at(node, ("judge",), "value", "a judge is exactly one of `endpoint` or `model`", prefer_key=True))
        return
    if j.model is not None:
        m = view.get("Model", j.model)
        if m is None:
            return  # the resolver reports an unknown name
        if m.spec.type != "llm" or not m.spec.llm.base.path:
            out.add(at(node, ("judge", "model"), "value", f"judge model '{j.model}' must be an LLM whose "
                        "`llm.base.path` is a folder in the repository (it is loaded in the gate's process)"))


def _check_variables(resolved: "Resolved", gate: "Node", prompt: "Node", dataset: "Node", out: Diagnostics) -> None:
    columns = [c.name for c in dataset.spec.columns]
    column_types = {c.name: c.type for c in dataset.spec.columns}
    variables = prompt.spec.variables
    # A variable with a default, or not required (rendered as ""), needs no column.
    defaults = {k for k, v in variables.items() if v.default is not None or not v.required}
    provided = set(columns) | defaults
    what = f"dataset '{dataset.name}' (split '{gate.spec.split}' of gate '{gate.name}')"
    sink = Diagnostics()  # the prompt's own syntax errors are reported by check_prompt
    for path, u in template_uses(resolved, prompt, template_texts(prompt.spec), sink) or []:
        var = variables.get(u.name)
        col = column_types.get(u.name)
        if var is not None and col is not None and col not in COLUMN_TYPES_FOR[var.type]:
            out.add(at(prompt, ("variables", u.name, "type"), "template-vars",
                        f"variable '{u.name}' is typed {var.type}, but column '{u.name}' of {what} is {col}"))
        if u.name not in provided:
            out.add(Diagnostic("error", "template-vars",
                               f"template variable '{u.name}' is not a column of {what} and has no default"
                               + suggestion(u.name, columns), prompt.file,
                               template_pos(resolved, prompt, path, u.line, u.name),
                               (f"columns: {', '.join(columns) or 'none declared'}",)))
    texts = [(("assertions", i, "value"), a.value) for i, a in enumerate(gate.spec.assertions)
             if isinstance(a.value, str)]
    texts += [(("assertions", i, "value", j), v) for i, a in enumerate(gate.spec.assertions)
              if isinstance(a.value, list) for j, v in enumerate(a.value)]
    for path, u in template_uses(resolved, gate, texts, out) or []:
        if u.name not in provided:
            out.add(Diagnostic("error", "template-vars",
                               f"assertion value reads '{u.name}', which is not a column of {what}"
                               + suggestion(u.name, columns), gate.file,
                               template_pos(resolved, gate, path, u.line, u.name),
                               (f"columns: {', '.join(columns) or 'none declared'}",)))
