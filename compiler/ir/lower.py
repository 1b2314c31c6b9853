"""Lowering: a resolved environment -> the backend-neutral IR (ir.Pipeline, ir.Serving).

Per environment and per Model, the lifecycle pipeline
    check-<dataset>... -> train | finetune | command -> evaluate -> gate-<gate>... -> register
    -> deploy (when a ServingTarget serves the model here)
and per ServingTarget, one Serving node. Step params follow the runtime's documented param
schemas (specops.runtime.*); a mismatch fails loudly there, not silently here.
"""

from __future__ import annotations

import dataclasses
import graphlib
import hashlib
import heapq
import json
from collections.abc import Callable
from typing import Any

from specops import ir
from specops.ir import classical, steps
from specops.frontend.overrides import Node, deep_merge
from specops.resolve.lockfile import pin_for
from specops.resolve.refs import EnvView, Resolved
from specops.runtime.thresholds import parse_threshold

# Metrics evaluated when no gate asks for any.
_DEFAULT_METRICS = {"classification": ["auc", "accuracy"], "regression": ["rmse"], "generation": ["rougeL"]}


def spec_source(node: Node, path: tuple = (), key: bool = False) -> ir.Source:
    """Where `path` of the node's spec is (its key's position with `key`), computed on demand."""
    full = ("spec",) + path if path else ("metadata", "name")

    def locate() -> tuple[int, int]:
        pos = node.doc.pos_of(full, key) if key else node.doc.pos_of(full)
        return pos.line, pos.col

    return ir.Source(node.file, locate=locate)


def lower_target(name: str, t: Any) -> ir.Target:
    return ir.Target(
        name=name, backend=t.backend, provider=t.provider, region=t.region, project=t.project,
        host=t.host, artifact_store=t.artifact_store, image_registry=t.image_registry,
        serving_platform=t.serving.platform,
        namespace=t.serving.namespace, role_arn=t.role_arn, gpus=tuple(t.gpus),
        registry_uri=t.registry.tracking_uri,
    )


def env_defaults(resolved: Resolved, env: str) -> dict[str, Any]:
    base = resolved.project.defaults.model_dump(mode="python")
    over = resolved.project.environments[env].defaults
    # Env defaults are written camelCase like the Project's; map the known ones.
    snake = {"vllmVersion": "vllm_version", "servingImage": "serving_image"}
    return deep_merge(base, {snake.get(k, k): v for k, v in over.items()})


def step_image(image: str, target: Any) -> str:
    """The image the lifecycle steps run in: the Project's runtime image (`defaults.image`),
    pulled from the target's `imageRegistry` when it names one. The registry holds a mirror of
    the image under its own name and tag (or digest): `ghcr.io/specops-dev/runtime:0.1.0` with
    `imageRegistry: us-docker.pkg.dev/acme/specops` is `us-docker.pkg.dev/acme/specops/runtime:0.1.0`,
    the way a cluster that cannot pull from the public registry (SageMaker pulls from ECR only)
    is given it. Images a step names itself (`command.image`, a custom step's `image`) are used
    as written: they are the user's choice, not specops's."""
    registry = getattr(target, "image_registry", None)
    if not registry:
        return image
    return f"{registry.rstrip('/')}/{image.rsplit('/', 1)[-1]}"


def _source_params(ds: Node) -> dict[str, Any]:
    """What the data_check step needs to read a dataset (runtime.data_check SOURCE_KEYS)."""
    s = ds.spec
    out: dict[str, Any] = {
        "name": ds.name, "uri": s.source.uri, "format": s.source.format, "version": s.source.version,
        "schema": [{"name": c.name, "type": c.type, "nullable": c.nullable} for c in s.columns],
    }
    if s.source.csv is not None:
        out["csv"] = s.source.csv.model_dump(mode="json")
    if s.credentials is not None:
        # The secret's reference (where it lives), never its value.
        out["credentials"] = s.credentials.secret_ref.model_dump(mode="json", exclude_none=True)
    return out


def _check_params(view: EnvView, check: Any) -> dict[str, Any]:
    out = check.model_dump(mode="json", by_alias=True, exclude_none=True)
    if out["type"] == "references":
        other = view.get("Dataset", check.dataset)
        out["dataset"] = _source_params(other) if other is not None else {"name": check.dataset}
    return out


def _dataset_params(view: EnvView, ds: Node, seed: int, root: Any) -> dict[str, Any]:
    s = ds.spec
    out = {
        **_source_params(ds),
        "splits": dict(s.splits),
        "checks": [_check_params(view, c) for c in s.checks],
        "seed": seed,
    }
    pin = pin_for(root, s.source.uri, s.source.version)
    if not pin and s.source.sha256:
        pin = {"digest": f"sha256:{s.source.sha256}"}  # a hash written in the spec pins the data too
    if s.pii.contains or s.pii.columns:
        # Recorded with the splits (dataset.json), so what trains on them knows what they hold.
        out["pii"] = {"contains": s.pii.contains, "columns": list(s.pii.columns)}
    if s.license is not None:
        out["license"] = s.license
    if ds.labels:
        out["labels"] = dict(sorted(ds.labels.items()))
    if pin:
        # The data must be what `specops lock` recorded: the step refuses anything else.
        out["lock"] = pin
    return out


# Public: monitors read their windows with the same data_check params (same splits, same seed).
dataset_params = _dataset_params


def _resources(spec: Any) -> ir.Resources:
    r = spec.resources
    acc = r.accelerator
    return ir.Resources(
        cpu=str(r.cpu) if r.cpu is not None else None, memory=r.memory,
        accelerator=acc.type if acc else None, accelerator_count=acc.count if acc else 0,
        instance_type=r.instance_type,
        nodes=getattr(r, "nodes", 1), strategy=getattr(r, "strategy", None),
    )


def _one_machine(spec: Any) -> ir.Resources:
    """The model's resources for a step that runs on one machine (evaluation), whatever the
    training spans."""
    return dataclasses.replace(_resources(spec), nodes=1, strategy=None)


def distributed_params(resources: ir.Resources) -> dict[str, Any] | None:
    """The finetune step's `distributed` param (runtime/distributed.py): nodes x processes."""
    if resources.nodes == 1 and resources.strategy is None:
        return None
    per_node = max(1, resources.accelerator_count)
    return {"nodes": resources.nodes, "nproc_per_node": per_node, "strategy": resources.strategy or "ddp"}


def tracking_params(view: EnvView) -> dict[str, Any]:
    """The registry a step talks to: the target's MLflow server, or null (then the step's
    $MLFLOW_TRACKING_URI, else the embedded store of the repo it runs in)."""
    return {"uri": view.target.registry.tracking_uri}


def baseline_from(view: EnvView, model: Node | None) -> dict[str, Any] | None:
    """Where a gate's baseline comes from: the version this environment serves (its alias)."""
    if model is None:
        return None
    return {"registry": model.spec.registry.name or model.name, "env": view.name, "tracking": tracking_params(view)}


def _gate_params(gate: Node, view: EnvView | None = None) -> dict[str, Any]:
    metrics = [parse_threshold(m.threshold).to_params(m.metric) for m in gate.spec.metrics]
    if gate.spec.prompt is not None and not any(m["metric"] == "regression_p_value" for m in metrics):
        # The significance test of a prompt gate: its drop against the baseline's rows must
        # not be significant at the gate's alpha (the p-value is 1 without a baseline).
        metrics.append(parse_threshold(f">= {gate.spec.alpha!r}").to_params("regression_p_value"))
    out = {"gate": gate.name, "metrics": metrics, "baseline": None,
           "on_missing_baseline": gate.spec.on_missing_baseline}
    if view is not None and any(m.get("baseline_delta") is not None or m.get("baseline_factor") is not None
                                for m in metrics):
        out["baseline_from"] = baseline_from(view, gate_model(view, gate))
    return out


def gate_model(view: EnvView, gate: Node) -> Node | None:
    """The Model a gate evaluates: its own `model`, else its prompt's."""
    if gate.spec.model:
        return view.get("Model", gate.spec.model)
    prompt = view.get("Prompt", gate.spec.prompt) if gate.spec.prompt else None
    return view.get("Model", prompt.spec.model) if prompt is not None else None


def gates_of_model(view: EnvView, model: Node) -> list[Node]:
    """The EvalGates evaluated in `model`'s pipeline: those naming it, and prompt gates
    without a model whose Prompt targets it. Sorted by name."""
    index = view.memo.get("gates_of_model")
    if index is None:  # one pass over the gates per view, not one per model
        index = {}
        for g in view.of_kind("EvalGate"):
            if (m := gate_model(view, g)) is not None:
                index.setdefault(m.name, []).append(g)
        view.memo["gates_of_model"] = index
    return list(index.get(model.name, ()))


def _endpoint_params(ep: Any) -> dict[str, Any]:
    key = ep.api_key.secret_ref if ep.api_key is not None else None
    return {"url": ep.url, "model": ep.model, "api_key_env": key.name if key is not None else None,
            "concurrency": ep.concurrency, "timeout_s": ep.timeout_seconds}


def prompt_eval_params(view: EnvView, gate: Node, seed: int) -> dict[str, Any]:
    """The `evaluate` step params (task prompt, see specops.runtime.prompt_eval) of a prompt gate."""
    s = gate.spec
    prompt = view.get("Prompt", s.prompt)
    ps = prompt.spec
    body: dict[str, Any] = {"name": prompt.name, "version": ps.version,
                            # Declared defaults; a variable that is not required renders as "".
                            "defaults": {k: v.default if v.default is not None else ""
                                         for k, v in sorted(ps.variables.items())
                                         if v.default is not None or not v.required},
                            "parameters": ps.parameters.model_dump(mode="json", exclude_none=True)}
    if ps.template is not None:
        body["template"] = ps.template
    else:
        body["messages"] = [m.model_dump(mode="json") for m in ps.messages or []]
    judge = None
    if s.judge is not None:
        if s.judge.endpoint is not None:
            judge = {"endpoint": _endpoint_params(s.judge.endpoint)}
        else:
            jm = view.get("Model", s.judge.model)
            judge = {"model_path": jm.spec.llm.base.path if jm is not None and jm.spec.type == "llm" else None}
    return {"task": "prompt", "gate": gate.name, "split": s.split, "prompt": body,
            "assertions": [a.model_dump(mode="json") for a in s.assertions],
            "endpoint": _endpoint_params(s.endpoint) if s.endpoint is not None else None,
            "judge": judge, "repeat": s.repeat, "row_pass_fraction": s.row_pass_fraction, "alpha": s.alpha,
            "baseline_rows": None, "baseline_from": baseline_from(view, gate_model(view, gate)), "seed": seed}


def _finetune_step(model: Node, data_step: str, split: str, image: str, resources: ir.Resources,
                   seed: int) -> ir.Step:
    """The fine-tune step; every knob from the spec (its schema holds the defaults)."""
    llm = model.spec.llm
    ft = llm.finetune
    base = llm.base.path or llm.base.model
    if llm.base.from_model:
        base = f"registry://{llm.base.from_model}"
    return ir.Step("finetune", "finetune", {
        "base_model": base, "revision": llm.base.revision, "method": ft.method,
        "lora": ({"r": ft.lora.r, "alpha": ft.lora.alpha, "dropout": ft.lora.dropout,
                  "target_modules": list(ft.lora.target_modules)} if ft.method == "lora" else None),
        "epochs": ft.epochs, "learning_rate": ft.learning_rate, "batch_size": ft.batch_size,
        "max_seq_length": ft.max_seq_length, "prompt_field": llm.prompt_field,
        "response_field": llm.response_field, "split": split, "max_steps": ft.max_steps, "seed": seed,
        **({"distributed": dist} if (dist := distributed_params(resources)) else {}),
    }, inputs={"data": data_step}, image=image, resources=resources, source=spec_source(model, ("llm", "finetune")))


def _train_step(model: Node, data_step: str, image: str, seed: int) -> tuple[ir.Step | None, str]:
    """(train | finetune | command step, task); None when the model is served as published."""
    spec = model.spec
    resources = _resources(spec)
    train_split = spec.datasets[0].split if spec.datasets else "train"
    if spec.command is not None:
        c = spec.command
        step = ir.Step("train", "command", {"env": dict(sorted(c.env.items()))}, inputs={"data": data_step},
                       image=c.image, resources=resources, command=tuple(c.command) + tuple(c.args),
                       source=spec_source(model, ("command",)))
        return step, spec.classical.task if spec.type == "classical" else "generation"
    if spec.type == "classical":
        cl = spec.classical
        return ir.Step("train", "train", {
            "algorithm": cl.algorithm, "task": cl.task, "target": cl.target,
            "features": list(cl.features) if cl.features is not None else None,
            "hyperparameters": dict(sorted(spec.hyperparameters.items())), "split": train_split, "seed": seed,
        }, inputs={"data": data_step}, image=image, resources=resources, source=spec_source(model, ("classical",))), cl.task
    if spec.llm.finetune is None:
        return None, "generation"
    return _finetune_step(model, data_step, train_split, image, resources, seed), "generation"


def _base_params(model: Node) -> dict[str, Any]:
    """What evaluate and register read when the model is its published base (no training)."""
    llm = model.spec.llm
    base = llm.base
    out: dict[str, Any] = {"base_model": base.path or base.model or f"registry://{base.from_model}",
                           "revision": base.revision}
    if llm.adapter is not None:
        out["adapter"] = {"model": llm.adapter.model, "revision": llm.adapter.revision}
    return out


def _prompt_gate_steps(view: EnvView, g: Node, name: str, checked: set[str], model_input: dict[str, str],
                       model: Node, image: str, seed: int, root: Any) -> list[ir.Step]:
    """A prompt gate's evaluate step (and the data check of its dataset when the model's
    pipeline does not check it already)."""
    out = []
    ds = view.get("Dataset", g.spec.dataset)
    if ds.name not in checked:
        checked.add(ds.name)
        out.append(ir.Step(f"check-{ds.name}", "data_check", {"dataset": _dataset_params(view, ds, seed, root)},
                           image=image, source=spec_source(g, ("dataset",))))
    params = prompt_eval_params(view, g, seed)
    inputs = {"data": f"check-{ds.name}"}
    if g.spec.endpoint is None:
        inputs.update(model_input)
        if not model_input:
            params.update(_base_params(model))
    out.append(ir.Step(name, "evaluate", params, inputs=inputs, image=image,
                       resources=_one_machine(model.spec) if g.spec.endpoint is None else ir.Resources(),
                       source=spec_source(g, ("prompt",))))
    return out


def spec_digest(steps_: list[ir.Step], reg_params: dict[str, Any], reg_inputs: dict[str, str]) -> str:
    """sha256 of everything that makes a registered version what it is: every step up to
    register (kind, params, inputs, image, command) and register's own params. Recorded on the
    version (`specops.spec_digest`), it is how apply finds the version a pipeline registered."""
    doc = [{"name": s.name, "kind": s.kind, "params": s.params, "inputs": dict(sorted(s.inputs.items())),
            "image": s.image, "command": list(s.command) if s.command is not None else None} for s in steps_]
    doc.append({"name": "register", "params": {k: v for k, v in reg_params.items() if k != "spec_digest"},
                "inputs": dict(sorted(reg_inputs.items()))})
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _uses(spec: Any, gates: list[Node]) -> list[tuple[str, tuple | None]]:
    """(dataset, spec path) of every Dataset the pipeline checks: training data first, then
    what custom steps and batch scoring read."""
    uses: list[tuple[str, tuple | None]] = [(u.dataset, ("datasets", i, "dataset")) for i, u in enumerate(spec.datasets)]
    if not uses:  # a published model is evaluated on its gates' data
        uses = [(g.spec.dataset, None) for g in gates if g.spec.dataset]
    for i, st in enumerate(spec.steps):
        for k, v in sorted(st.inputs.items()):
            ref = steps.input_ref(v)[0]
            if "." not in ref:
                uses.append((ref, ("steps", i, "inputs", k)))
    uses += [(b.dataset, ("batch", i, "dataset")) for i, b in enumerate(spec.batch)]
    seen: dict[str, tuple | None] = {}
    for name, where in uses:
        seen.setdefault(name, where)
    return list(seen.items())


def _check_step(resolved: Resolved, view: EnvView, model: Node, ds: Node, where: tuple | None, image: str,
                seed: int, memo: dict[str, Any]) -> ir.Step:
    params = _dataset_params(view, ds, seed, resolved.repo.root)
    inputs: dict[str, str] = {}
    pb = ds.spec.produced_by
    if pb is not None:
        upstream = None if steps.made_inside(ds, model) else _lowered(resolved, view, pb.model, memo)
        over, inputs = steps.produced_dataset_params(view, ds, model, upstream)
        params.pop("lock", None)
        params.update({k: v for k, v in over.items() if v is not None})
        for k in [k for k, v in over.items() if v is None]:
            params.pop(k, None)
    return ir.Step(f"check-{ds.name}", "data_check", {"dataset": params}, inputs=inputs, image=image,
                   source=spec_source(model, where) if where else spec_source(ds))


def _lowered(resolved: Resolved, view: EnvView, name: str, memo: dict[str, Any]) -> ir.Pipeline | None:
    """The pipeline of Model `name` in this view, lowered once (lineage reads upstream ones)."""
    if name not in memo:
        memo[name] = None  # a cycle (reported by the resolver) ends here
        node = view.get("Model", name)
        memo[name] = lower_pipeline(resolved, view, node, memo) if node is not None else None
    return memo[name]


def _topo(steps_: list[ir.Step]) -> tuple[ir.Step, ...]:
    """Steps with their inputs first; otherwise in construction order (the lifecycle order)."""
    index = {s.name: i for i, s in enumerate(steps_)}
    graph = {s.name: [d for d in s.depends_on if d in index] for s in steps_}
    # Kahn's algorithm, the earliest-built ready step first: graphlib's order for a dozen
    # steps at a fraction of its cost (it was a fifth of lowering a pipeline).
    waiting = {n: len(deps) for n, deps in graph.items()}
    after: dict[str, list[str]] = {}
    for n, deps in graph.items():
        for d in deps:
            after.setdefault(d, []).append(n)
    ready = [(index[n], n) for n, k in waiting.items() if not k]
    heapq.heapify(ready)
    out: list[ir.Step] = []
    while ready:
        i, n = heapq.heappop(ready)
        out.append(steps_[i])
        for m in after.get(n, ()):
            waiting[m] -= 1
            if not waiting[m]:
                heapq.heappush(ready, (index[m], m))
    if len(out) < len(graph):
        graphlib.TopologicalSorter(graph).prepare()  # a cycle: graphlib's CycleError, as before
    return tuple(out)


def lower_pipeline(resolved: Resolved, view: EnvView, model: Node, memo: dict[str, Any] | None = None) -> ir.Pipeline | None:
    """The lifecycle pipeline of one Model, or None when it has nothing to run: an LLM served
    as published (no finetune, no command) that no gate evaluates. `memo` holds the pipelines
    lowered so far (a Dataset another model produces is versioned by its producer's)."""
    memo = {} if memo is None else memo
    spec = model.spec
    defaults = env_defaults(resolved, view.name)
    image = step_image(defaults["image"], view.target)
    seed = defaults["seed"]
    gates = gates_of_model(view, model)
    model_gates = [g for g in gates if g.spec.prompt is None]
    uses = [(view.get("Dataset", name), where) for name, where in _uses(spec, gates)]
    uses = [(ds, where) for ds, where in uses if ds is not None]
    datasets = [ds for ds, _ in uses]
    data_step = f"check-{datasets[0].name}" if datasets else ""
    train, task = _train_step(model, data_step, image, seed)
    if train is not None and train.kind == "train" and (export := classical.native_export(view, model)):
        # The booster MLServer's XGBoost/LightGBM runtime serves (specops.ir.classical).
        train = dataclasses.replace(train, params={**train.params, "export": export})
    pin = spec.registry.pin
    if pin is not None:
        # A pinned environment deploys a registered version: fetched, not trained, and its
        # gates re-check it on this environment's data.
        train = ir.Step("fetch", "fetch", {"registry": spec.registry.name or model.name, "version": pin.version,
                                           "digest": pin.digest, "tracking": tracking_params(view)},
                        image=image, source=spec_source(model, ("registry", "pin")))
    if train is None and not gates:
        return None
    if not datasets:
        return None  # gates without data are reported by the gate checks
    out: list[ir.Step] = [_check_step(resolved, view, model, ds, where, image, seed, memo) for ds, where in uses]
    publish = steps.published_outputs(view, model)
    order = steps.step_order(model)
    custom = {s.name: i for i, s in enumerate(spec.steps)}
    for name in order:
        if name in custom and not steps.is_post_train(model, name):
            st = spec.steps[custom[name]]
            out.append(steps.custom_step(model, name, image, _resources(st) if st.resources else ir.Resources(),
                                         spec_source(model, ("steps", custom[name])), publish))
    if train is not None:
        out.append(train)
    metrics = sorted({m.metric for g in model_gates for m in g.spec.metrics}) or _DEFAULT_METRICS[task]
    split = model_gates[0].spec.split if model_gates else "test"
    eval_params: dict[str, Any] = {"task": task, "metrics": metrics, "split": split}
    if task == "generation":
        eval_params.update({"prompt_field": spec.llm.prompt_field if spec.type == "llm" else "prompt",
                            "response_field": spec.llm.response_field if spec.type == "llm" else "response",
                            "max_new_tokens": 64})
    else:
        eval_params["target"] = spec.classical.target
    model_input = {"model": train.name} if train is not None else {}
    if train is None:
        eval_params.update(_base_params(model))
    out.append(ir.Step("evaluate", "evaluate", eval_params, inputs={**model_input, "data": data_step},
                       image=image,
                       # Evaluation runs on one machine, whatever the training spans.
                       resources=_one_machine(spec)
                       if task == "generation" else ir.Resources(),
                       source=spec_source(model)))
    for name in order:
        if name in custom and steps.is_post_train(model, name):
            st = spec.steps[custom[name]]
            out.append(steps.custom_step(model, name, image, _resources(st) if st.resources else ir.Resources(),
                                         spec_source(model, ("steps", custom[name])), publish))
    gate_steps = []
    checked = {ds.name for ds in datasets}
    for g in gates:
        measured = "evaluate"
        if g.spec.prompt is not None:
            measured = f"eval-{g.name}"
            out.extend(_prompt_gate_steps(view, g, measured, checked, model_input, model, image, seed,
                                          resolved.repo.root))
        step = ir.Step(f"gate-{g.name}", "gate", _gate_params(g, view), inputs={"metrics": measured}, image=image,
                       source=spec_source(g, ("metrics",)))
        out.append(step)
        gate_steps.append(step.name)
    reg_inputs = {**model_input, "metrics": "evaluate"}
    for i, gs in enumerate(gate_steps):
        reg_inputs[f"gate_{i}" if i else "gate"] = gs
    for i, ds in enumerate(datasets):  # lineage: the datasets' versions, digests and checks
        reg_inputs[f"data_{i}" if i else "data"] = f"check-{ds.name}"
    reg_params: dict[str, Any] = {"registry": spec.registry.name or model.name, "model": model.name,
                                  "version": None, "aliases": list(spec.registry.aliases), "env": view.name,
                                  "description": model.doc.data.get("metadata", {}).get("description"),
                                  "tracking": tracking_params(view),
                                  "pin": pin.model_dump(mode="json") if pin is not None else None}
    if train is None:
        reg_params.update(_base_params(model))
    reg_params["spec_digest"] = spec_digest(out, reg_params, reg_inputs)
    out.append(ir.Step("register", "register", reg_params, inputs=reg_inputs, image=image,
                       source=spec_source(model, ("registry",))))
    if train is not None:
        for i, b in enumerate(spec.batch):
            out.append(steps.batch_step(model, b.name, train.name, image,
                                        _resources(b) if b.resources else ir.Resources(),
                                        spec_source(model, ("batch", i)), publish, "register"))
    for st in (view.nodes[k] for k in view.referrers(model.key) if k.startswith("ServingTarget/")):
        if st.spec.model == model.name or model.name in st.spec.adapters:
            out.append(ir.Step(f"deploy-{st.name}", "deploy", {
                "serving_target": st.name, "model": model.name, "env": view.name},
                inputs={"registration": "register"}, image=image, source=spec_source(st, ("model",))))
    sched = spec.schedule
    return ir.Pipeline(
        name=model.name, env=view.name, model=model.name, target=lower_target(view.target_name, view.target),
        steps=_topo(out), parameters={"repo_root": "."},
        schedule=ir.Schedule(sched.cron, spec_source(model, ("schedule", "cron"))) if sched else None,
        artifact_root=f"{view.target.artifact_store.rstrip('/')}/{view.name}/{model.name}",
        labels=dict(sorted(model.labels.items())), source=spec_source(model),
    )


def looks_like_path(value: str) -> bool:
    """A chat-template value that names a file rather than being a template itself."""
    return "{" not in value and "\n" not in value


def named_file(root: Any, value: str) -> bool:
    """`value` is a repo-relative file (a path inside the repository that exists)."""
    if not looks_like_path(value) or value.startswith("/") or ".." in value.replace("\\", "/").split("/"):
        return False
    return (root / value).is_file()


# MLServer's image with every inference runtime (scikit-learn, XGBoost, LightGBM...): the
# version of tools/mlserver-constraints.txt, which the local platform runs.
MLSERVER_VERSION = "1.7.1"
MLSERVER_IMAGE = f"seldonio/mlserver:{MLSERVER_VERSION}"

# Where each serving platform's init step puts adapters for the server to read: the model
# cache volume (its Hugging Face cache dir on plain Kubernetes and KServe; the chart's /data,
# where its LoRA sidecar downloads too), the `adapters/` folder of LMI's model directory on a
# SageMaker endpoint (staged into S3 by apply), or on the local platform a folder of the repo.
ADAPTER_ROOTS = {
    "kubernetes": "/root/.cache/huggingface/adapters",
    "kserve": "/root/.cache/huggingface/adapters",
    "helm": "/data/lora-adapters",
    "sagemaker": "/opt/ml/model/adapters",
    "local": ".specops/adapters",
}


def trained_adapter_uri(artifact_store: str, env: str, model: str) -> str:
    """Where a fine-tuned Model's registered adapter lives in the target's artifact store."""
    return f"{artifact_store.rstrip('/')}/{env}/{model}/adapter"


def _adapter(view: EnvView, st: Node, i: int, name: str, root: str | None) -> ir.Adapter:
    m = view.get("Model", name)
    llm = m.spec.llm if m.spec.type == "llm" else None
    pub = llm.adapter if llm is not None else None
    where = spec_source(st, ("adapters", i))
    if pub is not None:
        return ir.Adapter(name, "published", pub.model, pub.revision, pub.rank,
                          f"{root or ADAPTER_ROOTS['local']}/{name}", where)
    ft = llm.finetune if llm is not None else None
    rank = ft.lora.r if ft is not None and ft.method == "lora" else 0
    uri = trained_adapter_uri(view.target.artifact_store, view.name, name)
    if root is None or root == ADAPTER_ROOTS["local"]:
        # Served where it was trained: read in place (file:// store), no fetch.
        path = uri[len("file://"):] if uri.startswith("file://") else f"{ADAPTER_ROOTS['local']}/{name}"
    else:
        path = f"{root}/{name}"
    return ir.Adapter(name, "trained", uri, None, rank, path, where)


def engine_args_as_written(node: Node) -> dict[str, Any]:
    """The engine args with the keys the user wrote (typed fields dumped by alias)."""
    return node.spec.engine.args.model_dump(mode="json", by_alias=True, exclude_none=True)


def lower_serving(resolved: Resolved, view: EnvView, st: Node) -> ir.Serving:
    spec = st.spec
    defaults = env_defaults(resolved, view.name)
    model = view.get("Model", spec.model)
    base = model.spec.llm.base if model is not None and model.spec.type == "llm" else None
    args = engine_args_as_written(st)
    template = args.get("chat-template")
    if isinstance(template, str) and named_file(resolved.repo.root, template):
        # A file the spec names ships inside the serve config: vLLM reads --chat-template as a
        # path or as the template itself, so the content travels on every platform.
        args["chat-template"] = (resolved.repo.root / template).read_text(encoding="utf-8")
    if base is not None and base.revision:
        # The pin reaches the server: weights and, unless another tokenizer is named, the
        # tokenizer come from exactly this commit.
        args["revision"] = base.revision
        if "tokenizer" not in args:
            args.setdefault("tokenizer-revision", base.revision)
    acc_type, acc_count = (spec.accelerator.type, spec.accelerator.count) if spec.accelerator else ("", 0)
    engine = classical.engine_of(st, model)
    if engine == "mlserver" and model is not None and model.spec.type == "classical":
        extra = classical.classical_fields(st, view, model)
        image, version = spec.image or MLSERVER_IMAGE, spec.engine.version or MLSERVER_VERSION
    else:
        extra, image, version = {}, spec.image or defaults["serving_image"], spec.engine.version or defaults["vllm_version"]
    extra.update(classical.request_fields(st))
    if acc_count > 1 and "tensor-parallel-size" not in args:
        # One replica spans its GPUs by tensor parallelism unless the spec says otherwise.
        args["tensor-parallel-size"] = acc_count
    target = lower_target(view.target_name, view.target)
    if spec.platform is not None:
        target = dataclasses.replace(target, serving_platform=spec.platform)
    root = ADAPTER_ROOTS.get(target.serving_platform)
    adapters = tuple(_adapter(view, st, i, a, root) for i, a in enumerate(spec.adapters)
                     if view.get("Model", a) is not None)
    if adapters and "enable-lora" not in args:
        args["enable-lora"] = True
    return ir.Serving(
        name=st.name, env=view.name, target=target, model=spec.model,
        model_uri=(base.model or f"registry://{base.from_model}") if base else f"registry://{spec.model}",
        model_config=f"{base.path}/config.json" if base is not None and base.path else None,
        engine_version=version, engine_args=dict(sorted(args.items())), accelerator=acc_type,
        accelerator_count=acc_count, replicas_min=spec.replicas.min, replicas_max=spec.replicas.max,
        canary_percent=spec.canary.traffic, adapters=adapters, adapter_root=root, gates=tuple(spec.gates),
        image=image, instance_type=spec.instance_type,
        hf_token_secret=_k8s_secret(spec.hf_token),
        labels=dict(sorted(st.labels.items())), source=spec_source(st),
        **_shape(st), **extra,
    )


# Probe fields as the spec writes them -> Kubernetes' names.
_PROBE_KEYS = ("initial_delay_seconds", "period_seconds", "timeout_seconds", "failure_threshold", "success_threshold")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _shape(st: Node) -> dict[str, Any]:
    """The pod-shape fields of ir.Serving from a ServingTarget, with each given field's position."""
    spec = st.spec
    out: dict[str, Any] = {}
    written = st.doc.data.get("spec") or {}
    sources = {k: spec_source(st, (k,), key=True) for k in ("resources", "env", "shmSize", "modelCache", "placement",
                                                        "strategy", "probes", "release", "image", "requestSettings",
                                                        "auth", "replicas", "instanceType", "engine") if k in written}
    if spec.resources is not None:
        r = spec.resources
        out.update(cpu_request=r.requests.cpu, memory_request=r.requests.memory,
                   cpu_limit=r.limits.cpu, memory_limit=r.limits.memory)
    out["env_vars"] = tuple(ir.EnvVar(e.name, e.value, (e.secret_ref.provider, e.secret_ref.name, e.secret_ref.key)
                                 if e.secret_ref else None, spec_source(st, ("env", i)))
                       for i, e in enumerate(spec.env))
    out["shm_size"] = spec.shm_size
    if spec.model_cache is not None:
        mc = spec.model_cache
        out["model_cache"] = ir.ModelCache(mc.enabled, mc.size, mc.access_mode, mc.storage_class)
    if spec.placement is not None:
        pl = spec.placement
        out["node_selector"] = dict(sorted(pl.node_selector.items()))
        out["tolerations"] = tuple(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in pl.tolerations)
        out["affinity"] = pl.affinity
    # Several GPUs per replica: a rolling update would wait for GPUs the old pod still holds.
    out["strategy"] = spec.strategy or ("Recreate" if spec.accelerator is not None and spec.accelerator.count > 1
                                        else None)
    if spec.probes is not None:
        out["probes"] = {kind: {**({"path": p.path} if p.path else {}), **{_camel(k): getattr(p, k) for k in _PROBE_KEYS
                                                    if getattr(p, k) is not None}}
                         for kind in ("startup", "readiness", "liveness") if (p := getattr(spec.probes, kind))}
    out["release"] = spec.release
    out["field_sources"] = sources
    return out


def _k8s_secret(ref: Any) -> tuple[str, str] | None:
    """A secret reference a Kubernetes pod can mount: (name, key)."""
    if ref is None or ref.secret_ref.provider != "kubernetes":
        return None
    return ref.secret_ref.name, ref.secret_ref.key or "token"


def lower_env(resolved: Resolved, env: str, keep: Callable[[str], bool] | None = None
              ) -> tuple[list[ir.Pipeline], list[ir.Serving]]:
    """Every Model's pipeline and every ServingTarget's node in `env`; with `keep`, only
    those whose key it accepts (an incremental compile has the others already)."""
    view = resolved.envs[env]
    memo: dict[str, Any] = {}
    models = [m for m in view.of_kind("Model") if keep is None or keep(m.key)]
    pipelines = [p for p in (_lowered(resolved, view, m.name, memo) for m in models) if p is not None]
    servings = [lower_serving(resolved, view, s) for s in view.of_kind("ServingTarget") if keep is None or keep(s.key)]
    # A classical server loads the registered model at start: a new model (its pipeline
    # changed) is a new server revision, so the rollout follows the retrain.
    servings = [dataclasses.replace(s, model_revision=steps.producer_version(memo.get(s.model)))
                if s.engine == "mlserver" else s for s in servings]
    return pipelines, servings
