"""Lineage: custom steps' wiring, batch scoring, and Datasets made by models' steps.

Each problem is reported at the value that causes it: an input wired to no output (with a
did-you-mean), a type that does not match what the wire carries, a pre-training step that
reads what training makes, a step name that clashes with a built-in step, a cycle among a
model's steps, a producedBy that names no step or output of its model.
"""

from __future__ import annotations

import graphlib
from typing import TYPE_CHECKING

from specops.checks.common import at
from specops.diagnostics import Diagnostics, suggestion
from specops.resolve.lineage import BATCH_OUTPUT, BUILTIN_OUTPUTS, input_ref, is_post_train, resolve_wire
from specops.runtime.placeholders import placeholders
from specops.specs.model import PRE_TRAIN_KINDS

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView

# Step names the lifecycle pipeline uses itself (prefixes end with '-').
RESERVED_STEPS = ("train", "finetune", "evaluate", "register")
RESERVED_PREFIXES = ("check-", "gate-", "deploy-", "eval-")


def check_model_steps(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    seen: dict[str, tuple] = {}
    named = [(s.name, ("steps", i, "name")) for i, s in enumerate(spec.steps)]
    named += [(b.name, ("batch", i, "name")) for i, b in enumerate(spec.batch)]
    for name, path in named:
        if name in RESERVED_STEPS or name.startswith(RESERVED_PREFIXES):
            out.add(at(node, path, "value", f"step name '{name}' is the lifecycle's own; pick another"))
        elif name in seen:
            out.add(at(node, path, "duplicate-name", f"step '{name}' is declared twice in this model"))
        seen.setdefault(name, path)
    outputs = {f"{s.name}.{o}" for s in spec.steps for o in s.outputs}
    outputs |= {f"{b.name}.{BATCH_OUTPUT}" for b in spec.batch} | {f"{a}.{b}" for a, b in BUILTIN_OUTPUTS}
    for i, s in enumerate(spec.steps):
        for key, value in sorted(s.inputs.items()):
            ref, want = input_ref(value)
            path = ("steps", i, "inputs", key) + (() if isinstance(value, str) else ("from",))
            w = resolve_wire(node, ref)
            if w.kind == "unknown" or (w.kind == "step" and w.type is None):
                out.add(at(node, path, "unresolved-ref", f"no step output '{ref}' in model '{node.name}'"
                           + suggestion(ref, sorted(outputs))))
                continue
            if w.kind == "step" and w.step == s.name:
                out.add(at(node, path, "cycle", f"step '{s.name}' reads its own output '{ref}'"))
                continue
            if want is not None and w.type is not None and want != w.type:
                out.add(at(node, path[:-1] + ("type",) if not isinstance(value, str) else path, "value",
                           f"input '{key}' expects {want}, but '{ref}' carries {w.type}"))
            if w.kind == "builtin" and spec.type == "llm" and w.step == "train":
                out.add(at(node, path, "value", "an LLM's pipeline has no `train` step; its fine-tune writes "
                           "the model"))
        argv = list(s.command) + list(s.args)
        for j, arg in enumerate(argv):
            for where, name in placeholders(arg):
                declared = s.inputs if where == "inputs" else s.outputs
                if name not in declared:
                    path = ("steps", i, "command", j) if j < len(s.command) else ("steps", i, "args", j - len(s.command))
                    out.add(at(node, path, "unresolved-ref", f"'${{{{{where}.{name}}}}}' names no {where[:-1]} of step "
                               f"'{s.name}'" + suggestion(name, sorted(declared))))
        if s.kind in PRE_TRAIN_KINDS and is_post_train(node, s.name):
            out.add(at(node, ("steps", i, "kind"), "value",
                       f"step '{s.name}' is a {s.kind} step but reads what training makes; a step after "
                       f"training is a predict or score step"))
    _check_step_cycles(node, out)
    for i, b in enumerate(spec.batch):
        if spec.type != "classical" or spec.command is not None:
            out.add(at(node, ("batch", i), "unsupported", "batch scoring runs a classical model trained by "
                       "the built-in train step; write a custom predict step for other models"))
            continue
        ds = view.get("Dataset", b.dataset)
        if ds is None:
            continue
        if b.split is not None and b.split not in ds.spec.splits:
            out.add(at(node, ("batch", i, "split"), "unresolved-ref", f"dataset '{ds.name}' has no split "
                       f"'{b.split}'" + suggestion(b.split, ds.spec.splits)))
        cols = [c.name for c in ds.spec.columns]
        for f in spec.classical.features or []:
            if cols and f not in cols:
                out.add(at(node, ("batch", i, "dataset"), "unresolved-ref",
                           f"dataset '{ds.name}' lacks feature '{f}' the model scores on"))


def _check_step_cycles(node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    graph: dict[str, list[str]] = {}
    for s in spec.steps:
        ups = []
        for value in s.inputs.values():
            w = resolve_wire(node, input_ref(value)[0])
            if w.kind == "step" and w.step != s.name:
                ups.append(w.step)
        graph[s.name] = sorted(set(ups))
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        cycle = list(e.args[1])
        first = min(cycle[:-1])
        i = next(i for i, s in enumerate(spec.steps) if s.name == first)
        out.add(at(node, ("steps", i, "inputs"), "cycle", "step wiring forms a cycle: " + " -> ".join(cycle)))


def check_producer(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """A produced Dataset names a step and output of its model that make a table."""
    pb = node.spec.produced_by
    model = view.get("Model", pb.model)
    if model is None:
        return  # reported by the resolver
    steps = {s.name: s for s in model.spec.steps}
    batch = {b.name for b in model.spec.batch}
    if pb.step not in steps and pb.step not in batch:
        out.add(at(node, ("producedBy", "step"), "unresolved-ref", f"model '{model.name}' has no step '{pb.step}'"
                   + suggestion(pb.step, sorted(set(steps) | batch))))
        return
    if pb.step in batch:
        if pb.output != BATCH_OUTPUT:
            out.add(at(node, ("producedBy", "output"), "unresolved-ref",
                       f"batch scoring step '{pb.step}' writes '{BATCH_OUTPUT}', not '{pb.output}'"))
        elif node.spec.source.format not in ("parquet", "csv") or next(
                b.format for b in model.spec.batch if b.name == pb.step) != node.spec.source.format:
            fmt = next(b.format for b in model.spec.batch if b.name == pb.step)
            out.add(at(node, ("source", "format"), "value", f"batch scoring step '{pb.step}' writes {fmt}, "
                       f"not {node.spec.source.format}"))
        return
    o = steps[pb.step].outputs.get(pb.output)
    if o is None:
        out.add(at(node, ("producedBy", "output"), "unresolved-ref", f"step '{pb.step}' of model '{model.name}' "
                   f"declares no output '{pb.output}'" + suggestion(pb.output, steps[pb.step].outputs)))
    elif o.type != "table":
        out.add(at(node, ("producedBy", "output"), "value", f"output '{pb.output}' of step '{pb.step}' is a "
                   f"{o.type}; a Dataset is made from a `table` output"))
