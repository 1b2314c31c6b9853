"""Semantic checks that need more than one field: prompts vs their variables, gate thresholds,
GPU types, vLLM flags, repo paths, and plaintext secrets anywhere in a spec."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from specops.backends import vllm
from specops.checks.capacity import capacity_report
from specops.diagnostics import Diagnostic, Diagnostics, Pos, suggestion
from specops.gpus import gpu_names
from specops.ir.lower import engine_args_as_written, lower_serving
from specops.runtime.thresholds import parse_threshold

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved

# Well-known credential shapes; a spec holding one leaks it into git and every artifact.
_SECRET_PATTERNS = [
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "a Hugging Face token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"), "an API key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"), "a Slack token"),
]

CLASSICAL_METRICS = {"auc", "accuracy", "f1", "precision", "recall", "rmse"}
LLM_METRICS = {"rougeL", "rouge1", "exact_match", "latency_p50_ms", "latency_p95_ms"}


def _at(node: "Node", path: tuple, code: str, msg: str, severity: str = "error",
        notes: tuple[str, ...] = (), prefer_key: bool = False) -> Diagnostic:
    return Diagnostic(severity, code, msg, node.file, node.doc.pos_of(("spec",) + path, prefer_key), notes)  # type: ignore[arg-type]


def _strings(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from _strings(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _strings(v, path + (i,))


def check_plaintext_secrets(resolved: "Resolved", out: Diagnostics) -> None:
    for s in resolved.repo.specs:
        for path, text in _strings(s.doc.data):
            for rx, what in _SECRET_PATTERNS:
                if rx.search(text):
                    out.add(Diagnostic("error", "plaintext-secret",
                                       f"this value looks like {what}; never commit secrets — store it in a "
                                       "secret manager and use `secretRef`", s.file, s.doc.pos_of(path)))
                    break


# ---- prompts -----------------------------------------------------------------------------


def _template_line(resolved: "Resolved", node: "Node", path: tuple, lineno: int) -> Pos:
    """Map a line inside a template string to the YAML file line (block scalars start one
    line below their `|` indicator)."""
    pos = node.doc.pos_of(("spec",) + path)
    raw = resolved.repo.files.get(node.file, b"").decode("utf-8", "replace").splitlines()
    first = raw[pos.line - 1][pos.col - 1:pos.col] if 0 < pos.line <= len(raw) else ""
    offset = 1 if first in ("|", ">") else 0
    return Pos(pos.line + offset + lineno - 1, pos.col if lineno == 1 and not offset else 1)


def check_prompt(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    if (spec.template is None) == (spec.messages is None):
        out.add(_at(node, (), "value", "a Prompt needs exactly one of `template` or `messages`", prefer_key=True))
        return
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    texts: list[tuple[tuple, str]] = ([(("template",), spec.template)] if spec.template is not None else
                                      [(("messages", i, "content"), m.content) for i, m in enumerate(spec.messages)])
    used: dict[str, tuple] = {}
    for path, text in texts:
        try:
            ast = env.parse(text)
        except jinja2.TemplateSyntaxError as e:
            out.add(Diagnostic("error", "template-syntax", f"template does not parse: {e.message}",
                               node.file, _template_line(resolved, node, path, e.lineno or 1)))
            return  # variables cannot be compared with a template that does not parse
        for var in sorted(meta.find_undeclared_variables(ast)):
            used.setdefault(var, path)
    declared = spec.variables
    for var, path in sorted(used.items()):
        if var not in declared:
            out.add(_at(node, path, "template-vars",
                        f"template uses variable '{var}' that is not declared under `variables`"
                        + suggestion(var, declared)))
    for var in sorted(declared):
        if var not in used:
            out.add(_at(node, ("variables", var), "template-vars",
                        f"variable '{var}' is declared but the template never uses it"
                        + suggestion(var, used), prefer_key=True))


def _offset_pos(node: "Node", path: tuple, offset: int | None) -> Pos:
    """The position `offset` characters into a single-line string value (skipping a quote)."""
    pos = node.doc.pos_of(("spec",) + path)
    if offset is None or pos.end_line != pos.line:
        return pos
    quoted = (pos.end_col or 0) - pos.col > len(str(_get(node.doc.data, ("spec",) + path)))
    return Pos(pos.line, pos.col + offset + (1 if quoted else 0))


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


# ---- gates -------------------------------------------------------------------------------


def check_gate(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    if spec.model is None and spec.prompt is None:
        out.add(_at(node, (), "missing-field", "an EvalGate needs `model`, `prompt` or both", prefer_key=True))
    model = view.get("Model", spec.model) if spec.model else None
    for i, m in enumerate(spec.metrics):
        try:
            parse_threshold(m.threshold)
        except ValueError as e:
            reason = getattr(e, "reason", None)
            msg = f"invalid threshold '{m.threshold}': {reason}" if reason else str(e)
            out.add(Diagnostic("error", "threshold", msg, node.file,
                               _offset_pos(node, ("metrics", i, "threshold"), getattr(e, "offset", None))))
        if model is not None:
            allowed = CLASSICAL_METRICS if model.spec.type == "classical" else LLM_METRICS
            if m.metric not in allowed:
                out.add(_at(node, ("metrics", i, "metric"), "value",
                            f"metric '{m.metric}' does not apply to {model.spec.type} model '{model.name}'; "
                            f"use one of {', '.join(sorted(allowed))}"))


# ---- repo paths and GPUs -----------------------------------------------------------------


def _check_repo_file(resolved: "Resolved", node: "Node", path: tuple, rel: str, what: str, out: Diagnostics) -> None:
    root = resolved.repo.root
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        out.add(_at(node, path, "path-escape", f"{what} '{rel}' must stay inside the repository"))
        return
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        out.add(_at(node, path, "path-escape", f"{what} '{rel}' resolves outside the repository (symlink?)"))
    elif not full.exists():
        out.add(_at(node, path, "value", f"{what} '{rel}' does not exist in the repository"))


def check_gpu(view: "EnvView", node: "Node", path: tuple, gpu_type: str, out: Diagnostics) -> None:
    names = {g.upper(): g for g in gpu_names()}
    if gpu_type.upper() not in names:
        out.add(_at(node, path, "value", f"unknown accelerator type '{gpu_type}'" + suggestion(gpu_type, names.values())))
        return
    offered = view.target.gpus if view.target is not None else []
    if offered and names[gpu_type.upper()] not in offered:
        out.add(_at(node, path, "value", f"target '{view.target_name}' (environment '{view.name}') offers "
                    f"{', '.join(offered)}, not {gpu_type}"))


def check_model(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    acc = spec.resources.accelerator
    if acc is not None:
        check_gpu(view, node, ("resources", "accelerator", "type"), acc.type, out)
    if spec.type == "classical":
        for use in spec.datasets:
            ds = view.get("Dataset", use.dataset)
            if ds is None or not ds.spec.columns:
                continue
            cols = [c.name for c in ds.spec.columns]
            wanted = [("target", spec.classical.target)] + [
                (("features", i), f) for i, f in enumerate(spec.classical.features or [])]
            for where, col in wanted:
                if col not in cols:
                    p = ("classical",) + (where if isinstance(where, tuple) else (where,))
                    out.add(_at(node, p, "unresolved-ref", f"dataset '{ds.name}' has no column '{col}'"
                                + suggestion(col, cols)))
            if use.split not in ds.spec.splits:
                out.add(_at(node, ("datasets", spec.datasets.index(use), "split"), "unresolved-ref",
                            f"dataset '{ds.name}' has no split '{use.split}'" + suggestion(use.split, ds.spec.splits)))
    elif spec.llm.base.path is not None:
        _check_repo_file(resolved, node, ("llm", "base", "path"), spec.llm.base.path, "base model folder", out)


def check_dataset(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    uri = node.spec.source.uri
    if uri.startswith("file://"):
        _check_repo_file(resolved, node, ("source", "uri"), uri[len("file://"):], "dataset file", out)


def check_serving(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    mine = Diagnostics()  # this target's own problems, to decide whether capacity can run
    check_gpu(view, node, ("accelerator", "type"), spec.accelerator.type, mine)
    model = view.get("Model", spec.model)
    if model is not None and model.spec.type != "llm":
        mine.add(_at(node, ("model",), "wrong-kind-ref", f"model '{model.name}' is a classical model; "
                     "vLLM serves LLMs (type: llm)"))
    for i, a in enumerate(spec.adapters):
        m = view.get("Model", a)
        if m is not None and (m.spec.type != "llm" or m.spec.llm.finetune is None
                              or m.spec.llm.finetune.method != "lora"):
            mine.add(_at(node, ("adapters", i), "value", f"adapter '{a}' is not a LoRA fine-tune"))
    check_engine_args(resolved, node, mine)
    # Capacity only for a target that is otherwise sound (an unknown GPU is reported once).
    if not mine.has_errors:
        check_capacity(resolved, view, node, mine)
    out.extend(mine.items)


def check_capacity(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """Weights + KV cache against the target GPU, in the PR, before anything is applied: an
    error that shows the numbers when it cannot fit, a warning when the fit is tight. Runs
    only where the model's config.json is in the repo (parameter counts are cached per user
    by the config's hash, so torch is imported once per model config, not per validate;
    nothing is written into the repo)."""
    model = view.get("Model", node.spec.model)
    if model is None or model.spec.type != "llm" or not model.spec.llm.base.path:
        return
    if not (resolved.repo.root / model.spec.llm.base.path / "config.json").is_file():
        return
    s = lower_serving(resolved, view, node)
    report = capacity_report(resolved.repo.root, s)
    if isinstance(report, Diagnostic):
        out.add(_at(node, ("accelerator",), report.code, report.message))
        return
    if report.verdict != "ok":
        severity = "error" if report.verdict == "does-not-fit" else "warning"
        code = "capacity" if severity == "error" else "capacity-tight"
        out.add(_at(node, ("accelerator", "type"), code, f"{report.label}: {report.reason}",
                    severity=severity, notes=tuple(report.notes)))


def check_engine_args(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    version = spec.engine.version or resolved.project.defaults.vllm_version
    args = engine_args_as_written(node)
    for p in vllm.check_args(args, version):
        path = ("engine", "version") if p.key is None else ("engine", "args", p.key)
        out.add(_at(node, path, p.code, p.message, severity=p.severity, prefer_key=p.code != "value"))


def check_semantics(resolved: "Resolved", out: Diagnostics) -> None:
    check_plaintext_secrets(resolved, out)
    envs = resolved.project.environments
    # A spec without overrides is the same document in every environment: checks that do
    # not depend on the environment run once per document.
    seen: set[int] = set()

    def first_time(node: "Node") -> bool:
        if id(node.doc) in seen:
            return False
        seen.add(id(node.doc))
        return True

    for view in resolved.envs.values():
        for node in view.of_kind("Prompt"):
            if not first_time(node):
                continue
            check_prompt(resolved, node, out)
            for i, env in enumerate(node.spec.labels):
                if env not in envs:
                    out.add(_at(node, ("labels", env), "unknown-env", f"labels name unknown environment '{env}'"
                                + suggestion(env, envs), prefer_key=True))
        for node in view.of_kind("EvalGate"):
            check_gate(view, node, out)
            for i, env in enumerate(node.spec.blocks):
                if env not in envs:
                    out.add(_at(node, ("blocks", i), "unknown-env", f"unknown environment '{env}'"
                                + suggestion(env, envs)))
        for node in view.of_kind("Dataset"):
            if first_time(node):
                check_dataset(resolved, node, out)
        for node in view.of_kind("Model"):
            check_model(resolved, view, node, out)
        for node in view.of_kind("ServingTarget"):
            check_serving(resolved, view, node, out)
