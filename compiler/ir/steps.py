"""Custom steps, batch scoring and datasets made by models: their wiring, lowered to IR steps.

A Model's custom steps (`steps:`) are user commands (kind `command`, the runtime's command
contract) whose inputs are wired by name:

    "<step>.<output>"   a custom step's declared output, or a built-in one: `train.model`
                        (type model), `evaluate.metrics` (type metrics)
    "<dataset>"         a Dataset's checked data (type table: dataset.json + split files)

Batch scoring steps (`batch:`) are runtime `predict` steps: the trained model scores a
Dataset after the model passed its gates (they wait for `register`).

A Dataset `producedBy` a step of model M is read
- inside M's own pipeline (a pre-training step's output M trains on): by a data check wired
  to that step, reading the file inside its output folder;
- by any other model: from where the producing step published it in the target's artifact
  store (`published_uri`); its version is the producer pipeline's fingerprint, so a change
  upstream changes every downstream pipeline that reads it (plan: update = retrain + gates).
"""

from __future__ import annotations

import graphlib
from typing import Any

from specops import ir
from specops.frontend.overrides import Node
from specops.resolve.lineage import BATCH_OUTPUT, input_ref, is_post_train, made_inside, resolve_wire
from specops.resolve.refs import EnvView

__all__ = ["BATCH_OUTPUT", "batch_step", "custom_step", "input_ref", "is_post_train", "made_inside",
           "produced_dataset_params", "published_outputs", "published_uri", "step_order"]

def published_uri(artifact_store: str, env: str, model: str, step: str, output: str) -> str:
    """Where a step's output is published for other models' pipelines to read."""
    return f"{artifact_store.rstrip('/')}/{env}/{model}/outputs/{step}/{output}"


def data_file_name(ds: Node) -> str:
    pb = ds.spec.produced_by
    return pb.file or f"data.{ds.spec.source.format}"


def producer_version(upstream: ir.Pipeline | None) -> str:
    """A produced dataset's version: its producer pipeline's fingerprint (a change upstream is
    a new version downstream)."""
    if upstream is None:
        return "unproduced"
    return "pipeline-" + ir.fingerprint(upstream)[:16]


def published_outputs(view: EnvView, model: Node) -> dict[tuple[str, str], str]:
    """(step, output) of `model` that other models' Datasets read -> the URI to publish to."""
    produced = view.memo.get("datasets_by_producer")
    if produced is None:
        # One pass over the Datasets per view, not one per model: that scan was O(models x
        # datasets), 2 s of lowering at 10,000 specs.
        produced = {}
        for ds in view.of_kind("Dataset"):
            if ds.spec.produced_by is not None:
                produced.setdefault(ds.spec.produced_by.model, []).append(ds)
        view.memo["datasets_by_producer"] = produced
    out: dict[tuple[str, str], str] = {}
    for ds in produced.get(model.name, ()):  # in the views' Dataset order, as the scan was
        pb = ds.spec.produced_by
        if made_inside(ds, model):
            continue
        out[(pb.step, pb.output)] = published_uri(view.target.artifact_store, view.name, model.name, pb.step, pb.output)
    return dict(sorted(out.items()))


def step_order(model: Node) -> list[str]:
    """Custom and batch step names with their upstream steps first, names breaking ties.
    (Cycles among them are reported by the checks; here they fall back to name order.)"""
    names = [s.name for s in model.spec.steps] + [b.name for b in model.spec.batch]
    graph: dict[str, set[str]] = {n: set() for n in names}
    for s in model.spec.steps:
        for value in s.inputs.values():
            w = resolve_wire(model, input_ref(value)[0])
            if w.kind == "step" and w.step in graph:
                graph[s.name].add(w.step)
    try:
        ts = graphlib.TopologicalSorter({k: sorted(v) for k, v in sorted(graph.items())})
        ts.prepare()
    except graphlib.CycleError:
        return sorted(names)
    out: list[str] = []
    while ts.is_active():
        ready = sorted(ts.get_ready())
        out.extend(ready)
        ts.done(*ready)
    return out


def custom_step(model: Node, name: str, image: str, resources: ir.Resources, source: ir.Source,
                publish: dict[tuple[str, str], str]) -> ir.Step:
    """A custom step as an IR `command` step."""
    s = next(x for x in model.spec.steps if x.name == name)
    inputs: dict[str, str] = {}
    paths: dict[str, str] = {}
    for input_name, value in sorted(s.inputs.items()):
        w = resolve_wire(model, input_ref(value)[0])
        if w.kind == "dataset":
            inputs[input_name] = f"check-{w.step}"
        else:
            inputs[input_name] = w.step
            if w.kind == "step":
                paths[input_name] = w.output or ""
    # `kind` tells the program where it sits (prep ... score); the checks hold it to the wiring.
    params: dict[str, Any] = {"env": dict(sorted(s.env.items())), "kind": s.kind,
                              "outputs": {k: v.type for k, v in sorted(s.outputs.items())}}
    if paths:
        params["input_paths"] = paths
    pub = {out: uri for (step, out), uri in publish.items() if step == name}
    if pub:
        params["publish"] = pub
    return ir.Step(name, "command", params, inputs=inputs, image=s.image or image, resources=resources,
                   command=tuple(s.command) + tuple(s.args), source=source)


def batch_step(model: Node, name: str, train: str, image: str, resources: ir.Resources, source: ir.Source,
               publish: dict[tuple[str, str], str], after: str | None) -> ir.Step:
    """A batch scoring step as an IR `predict` step."""
    b = next(x for x in model.spec.batch if x.name == name)
    params: dict[str, Any] = {"split": b.split, "format": b.format, "output": BATCH_OUTPUT}
    pub = {out: uri for (step, out), uri in publish.items() if step == name}
    if pub:
        params["publish"] = pub
    inputs = {"model": train, "data": f"check-{b.dataset}"}
    if after is not None:
        inputs["registration"] = after
    return ir.Step(name, "predict", params, inputs=inputs, image=image, resources=resources, source=source)


def produced_dataset_params(view: EnvView, ds: Node, consumer: Node,
                            upstream: ir.Pipeline | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(source params overrides, step inputs) of the data check of a produced Dataset in
    `consumer`'s pipeline."""
    pb = ds.spec.produced_by
    file = data_file_name(ds)
    if made_inside(ds, consumer):
        return ({"uri": None, "version": None, "input": {"name": "source", "path": f"{pb.output}/{file}"}},
                {"source": pb.step})
    uri = published_uri(view.target.artifact_store, view.name, pb.model, pb.step, pb.output)
    return {"uri": f"{uri}/{file}", "version": producer_version(upstream)}, {}
