"""Lineage inside and between models: how a custom step's inputs are wired, and which
datasets a model makes for itself (before training) or for others.

Spec-level helpers shared by the resolver (reference edges, cycles), the checks and the
lowering (specops.ir.steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from specops.frontend.overrides import Node
from specops.specs.model import PRE_TRAIN_KINDS

# Built-in steps a custom step can read from, and the type of what they carry.
BUILTIN_OUTPUTS: dict[tuple[str, str], str] = {("train", "model"): "model", ("evaluate", "metrics"): "metrics"}
# What a batch scoring step writes: a table named `predictions`.
BATCH_OUTPUT = "predictions"


@dataclass(frozen=True)
class Wire:
    """One resolved input reference."""

    kind: str  # "step" (a custom or batch step's output) | "builtin" | "dataset" | "unknown"
    step: str  # the upstream step (custom step name, "train"/"evaluate", or the dataset name)
    output: str | None  # the output name (None for a dataset)
    type: str | None  # the type it carries (None when unknown)


def input_ref(value: Any) -> tuple[str, str | None]:
    """(reference, declared type) of a custom step's input, short or long form."""
    if isinstance(value, str):
        return value, None
    return value.from_, value.type


def resolve_wire(model: Node, ref: str) -> Wire:
    spec = model.spec
    if "." in ref:
        step, _, output = ref.partition(".")
        for s in spec.steps:
            if s.name == step:
                out = s.outputs.get(output)
                return Wire("step", step, output, out.type if out is not None else None)
        for b in spec.batch:
            if b.name == step:
                return Wire("step", step, output, "table" if output == BATCH_OUTPUT else None)
        if (step, output) in BUILTIN_OUTPUTS:
            return Wire("builtin", step, output, BUILTIN_OUTPUTS[(step, output)])
        return Wire("unknown", step, output, None)
    return Wire("dataset", ref, None, "table")


def is_post_train(model: Node, step_name: str, _seen: frozenset[str] = frozenset()) -> bool:
    """Whether a custom step reads (transitively) what training makes."""
    step = next((s for s in model.spec.steps if s.name == step_name), None)
    if step is None or step_name in _seen:
        return False
    for value in step.inputs.values():
        w = resolve_wire(model, input_ref(value)[0])
        if w.kind == "builtin" or (w.kind == "step" and is_post_train(model, w.step, _seen | {step_name})):
            return True
    return False


def producer_step_kind(producer: Node, step: str) -> str | None:
    """The kind of `producer`'s step named `step`: a custom step's kind, "batch", or None."""
    for s in producer.spec.steps:
        if s.name == step:
            return s.kind
    if any(b.name == step for b in producer.spec.batch):
        return "batch"
    return None


def made_inside(ds: Node, model: Node) -> bool:
    """`ds` is made by one of `model`'s own steps that runs before training (so `model` may
    train on it without a cycle)."""
    pb = ds.spec.produced_by
    if pb is None or pb.model != model.name:
        return False
    return producer_step_kind(model, pb.step) in PRE_TRAIN_KINDS and not is_post_train(model, pb.step)


def datasets_read(model: Node) -> list[str]:
    """Names of the Datasets a model's pipeline reads: its training data, what its custom
    steps take by name, what its batch scoring scores."""
    spec = model.spec
    names = [u.dataset for u in spec.datasets]
    for s in spec.steps:
        names += [ref for ref in (input_ref(v)[0] for v in s.inputs.values()) if "." not in ref]
    names += [b.dataset for b in spec.batch]
    return list(dict.fromkeys(names))


def upstream_models(view: Any, model: Node) -> list[str]:
    """Models whose steps make a Dataset this model reads (not itself): lineage dependencies."""
    out = set()
    for name in datasets_read(model):
        ds = view.get("Dataset", name)
        pb = ds.spec.produced_by if ds is not None else None
        if pb is not None and pb.model != model.name:
            out.add(pb.model)
    return sorted(out)
