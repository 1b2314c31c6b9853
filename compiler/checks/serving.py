"""Serving targets: GPUs, the served model and adapters, exact vLLM flags, and capacity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specops import gpus
from specops.backends import vllm
from specops.checks.capacity import capacity_report
from specops.checks.classical import check_classical_serving
from specops.checks.common import at, check_gpu
from specops.diagnostics import Diagnostic, Diagnostics
from specops.ir.classical import engine_of
from specops.ir.lower import engine_args_as_written, looks_like_path, lower_serving, named_file

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved


def check_serving(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    mine = Diagnostics()  # this target's own problems, to decide whether capacity can run
    model = view.get("Model", spec.model)
    if engine_of(node, model) == "mlserver":
        check_classical_serving(view, node, model, mine)
        if not mine.has_errors:
            check_gate_wiring(view, node, mine)
        out.extend(mine.items)
        return
    if model is not None and model.spec.type != "llm":
        mine.add(at(node, ("engine", "name"), "wrong-kind-ref", f"model '{model.name}' is a classical model; "
                     "vLLM serves LLMs (MLServer serves classical models: omit `engine.name`)"))
    if spec.accelerator is None:
        out.extend(mine.items)
        out.add(at(node, (), "missing-field", "a vLLM target needs `accelerator` (the GPU type and count of a "
                   "replica)"))
        return
    check_gpu(view, node, ("accelerator", "type"), spec.accelerator.type, mine)
    if not mine.has_errors:
        check_gpu_fit(view, node, mine)
    check_adapters(resolved, view, node, model, mine)
    if not mine.has_errors:  # one problem at a time: a target that cannot serve at all first
        check_gate_wiring(view, node, mine)
    check_engine_args(resolved, node, mine)
    # Capacity only for a target that is otherwise sound (an unknown GPU is reported once).
    if not mine.has_errors:
        check_capacity(resolved, view, node, mine)
    out.extend(mine.items)


def check_gate_wiring(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """A gate a target requires evaluates the target's model or one of its adapters (else the
    rollout could never be unblocked); where the environment's policy requires gates, a target
    that no gate guards is refused."""
    spec = node.spec
    served = {spec.model, *spec.adapters}
    for i, name in enumerate(spec.gates):
        g = view.get("EvalGate", name)
        if g is None:
            continue
        evaluated = g.spec.model
        if evaluated is None and g.spec.prompt:
            p = view.get("Prompt", g.spec.prompt)
            evaluated = p.spec.model if p is not None else None
        if evaluated is not None and evaluated not in served:
            out.add(at(node, ("gates", i), "value",
                       f"gate '{name}' evaluates model '{evaluated}', but this target serves "
                       f"{', '.join(sorted(served))}: its verdict can never unblock this rollout"))
    if view.env is not None and view.env.policy.require_gates:
        guarded = view.memo.get("models_gated_here")
        if guarded is None:  # once per view: a scan of every gate per target was quadratic
            guarded = view.memo["models_gated_here"] = {
                g.spec.model for g in view.of_kind("EvalGate") if view.name in g.spec.blocks}
        if not spec.gates and not (served & guarded):
            where = ("gates",) if "gates" in (node.doc.data.get("spec") or {}) else ()
            out.add(at(node, where, "value",
                       f"environment '{view.name}' requires gates, but no gate guards this target: name one "
                       f"in `gates` (or an EvalGate that blocks '{view.name}' for {spec.model})", prefer_key=True))


def check_gpu_fit(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """The GPU can run the dtype asked for, and one instance shape of the target's cloud holds
    the GPUs of one replica."""
    spec = node.spec
    g = gpus.gpu(spec.accelerator.type)
    if spec.engine.args.dtype == "bfloat16" and not g.bf16:
        out.add(at(node, ("engine", "args", "dtype"), "value",
                   f"{g.name} has no bf16 support; use dtype 'half' (float16)"))
    platform = spec.platform or (view.target.serving.platform if view.target is not None else None)
    provider = "sagemaker" if platform == "sagemaker" else (view.target.provider if view.target is not None else "local")
    if provider in ("local", "onprem"):
        return
    count = spec.accelerator.count
    if not gpus.instances_for(g, provider, count):
        shapes = sorted({f"{i.name} ({i.gpu_count})" for i in g.instances if i.provider == provider})
        out.add(at(node, ("accelerator", "count") if "count" in (node.doc.data.get("spec", {}).get("accelerator") or {})
                   else ("accelerator",), "value",
                   f"no {provider} instance holds {count} x {g.name}" + (
                       f"; shapes: {', '.join(shapes)}" if shapes else f"; {provider} offers no {g.name}")))


def _base_of(model: "Node") -> tuple:
    b = model.spec.llm.base
    return (b.model, b.revision, b.from_model)


def check_adapters(resolved: "Resolved", view: "EnvView", node: "Node", model: "Node | None",
                   out: Diagnostics) -> None:
    """Each adapter is a LoRA (trained here or published) on the served model's own base, and
    vLLM's max-lora-rank holds the largest of them."""
    spec = node.spec
    ranks: list[tuple[int, int]] = []
    for i, a in enumerate(spec.adapters):
        m = view.get("Model", a)
        if m is None:
            continue
        llm = m.spec.llm if m.spec.type == "llm" else None
        ft = llm.finetune if llm is not None else None
        if llm is None or (llm.adapter is None and (ft is None or ft.method != "lora")):
            out.add(at(node, ("adapters", i), "value", f"adapter '{a}' is neither a LoRA fine-tune nor a "
                       "published adapter (`llm.adapter`)"))
            continue
        ranks.append((i, llm.adapter.rank if llm.adapter is not None else ft.lora.r))
        if model is not None and model.spec.type == "llm" and _base_of(m) != _base_of(model) \
                and a != model.name:
            out.add(at(node, ("adapters", i), "value",
                       f"adapter '{a}' was made for base '{m.spec.llm.base.model or m.spec.llm.base.from_model}' "
                       f"@ {m.spec.llm.base.revision}, but this target serves '{model.name}' on "
                       f"'{model.spec.llm.base.model or model.spec.llm.base.from_model}' @ {model.spec.llm.base.revision}"))
    if not ranks:
        return
    version = spec.engine.version or resolved.project.defaults.vllm_version
    i, largest = max(ranks, key=lambda t: (t[1], -t[0]))
    given = spec.engine.args.max_lora_rank
    try:
        allowed = vllm.lora_rank_for(largest, version)
    except vllm.UnknownVersion:
        return  # reported by the engine-args check
    if allowed is None:
        out.add(at(node, ("adapters", i), "value", f"adapter '{spec.adapters[i]}' has LoRA rank {largest}, "
                   f"above the largest max-lora-rank vLLM {version} allows"))
    elif given is not None and given < largest:
        out.add(at(node, ("engine", "args", "max-lora-rank"), "value",
                   f"max-lora-rank {given} is below adapter '{spec.adapters[i]}''s rank {largest}; "
                   f"omit it and specops sets {allowed}"))


def check_capacity(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """Weights + KV cache against the target GPU, in the PR, before anything is applied: an
    error that shows the numbers when it cannot fit, a warning when the fit is tight. Runs
    only where the model's config.json is in the repo; parameters are counted without torch
    (safetensors metadata or a per-architecture formula), cached per user by the config's
    hash; nothing is written into the repo. An architecture nothing can count is a warning
    at the model's base."""
    if view.target is None:
        return  # the environment names an unknown target: reported once, at its line
    model = view.get("Model", node.spec.model)
    if model is None or model.spec.type != "llm" or not model.spec.llm.base.path:
        return
    if not (resolved.repo.root / model.spec.llm.base.path / "config.json").is_file():
        return
    s = lower_serving(resolved, view, node)
    report = capacity_report(resolved.repo.root, s)
    if isinstance(report, Diagnostic):
        if report.severity == "warning":  # nothing counts this architecture: said at the model
            out.add(at(model, ("llm", "base"), report.code, report.message, severity="warning"))
        else:
            out.add(at(node, ("accelerator",), report.code, report.message))
        return
    if report.verdict != "ok":
        severity = "error" if report.verdict == "does-not-fit" else "warning"
        code = "capacity" if severity == "error" else "capacity-tight"
        out.add(at(node, ("accelerator", "type"), code, f"{report.label}: {report.reason}",
                    severity=severity, notes=tuple(report.notes)))


def check_named_files(resolved: "Resolved", node: "Node", args: dict, out: Diagnostics) -> None:
    """Files an engine arg names ship with the artifact or are refused: a chat template file of
    the repo is inlined into the serve config; a path outside it, or a tokenizer folder (which
    cannot travel in a serve config), is an error at its line."""
    template = args.get("chat-template")
    if isinstance(template, str) and looks_like_path(template) and not named_file(resolved.repo.root, template):
        out.add(at(node, ("engine", "args", "chat-template"), "value",
                   f"chat template '{template}' is not a file of this repository, so it cannot ship with the "
                   "serving artifact; commit it and name it by its repo-relative path (or inline the template)"))
    tok = args.get("tokenizer")
    if isinstance(tok, str) and (tok.startswith(("/", "./", "../")) or (resolved.repo.root / tok).exists()):
        out.add(at(node, ("engine", "args", "tokenizer"), "value",
                   f"tokenizer '{tok}' is a local folder, which no serving artifact carries; publish it with the "
                   "model (a Hub repo id) instead"))


def check_engine_args(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    version = spec.engine.version or resolved.project.defaults.vllm_version
    args = engine_args_as_written(node)
    check_named_files(resolved, node, args, out)
    for p in vllm.check_args(args, version):
        path = ("engine", "version") if p.key is None else ("engine", "args", p.key)
        out.add(at(node, path, p.code, p.message, severity=p.severity, prefer_key=p.code != "value"))


