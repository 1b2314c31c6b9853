"""Lowering: a resolved environment -> the backend-neutral IR (ir.Pipeline, ir.Serving).

Per environment and per Model, the lifecycle pipeline
    check-<dataset>... -> train | finetune | command -> evaluate -> gate-<gate>... -> register
    -> deploy (when a ServingTarget serves the model here)
and per ServingTarget, one Serving node. Step params follow the runtime's documented param
schemas (specops.runtime.*); a mismatch fails loudly there, not silently here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from specops import ir
from specops.frontend.overrides import Node, deep_merge
from specops.resolve.refs import EnvView, Resolved
from specops.runtime.thresholds import parse_threshold

# Metrics evaluated when no gate asks for any.
_DEFAULT_METRICS = {"classification": ["auc", "accuracy"], "regression": ["rmse"], "generation": ["rougeL"]}


def _source(node: Node, path: tuple = ()) -> ir.Source:
    full = ("spec",) + path if path else ("metadata", "name")

    def locate() -> tuple[int, int]:
        pos = node.doc.pos_of(full)
        return pos.line, pos.col

    return ir.Source(node.file, locate=locate)


def lower_target(name: str, t: Any) -> ir.Target:
    return ir.Target(
        name=name, backend=t.backend, provider=t.provider, region=t.region, project=t.project,
        host=t.host, artifact_store=t.artifact_store, image_registry=t.image_registry,
        serving_platform=t.serving.platform,
        namespace=t.serving.namespace, role_arn=t.role_arn, gpus=tuple(t.gpus),
    )


def env_defaults(resolved: Resolved, env: str) -> dict[str, Any]:
    base = resolved.project.defaults.model_dump(mode="python")
    over = resolved.project.environments[env].defaults
    # Env defaults are written camelCase like the Project's; map the known ones.
    snake = {"vllmVersion": "vllm_version", "servingImage": "serving_image"}
    return deep_merge(base, {snake.get(k, k): v for k, v in over.items()})


def _dataset_params(ds: Node, seed: int) -> dict[str, Any]:
    s = ds.spec
    return {
        "name": ds.name, "uri": s.source.uri, "format": s.source.format, "version": s.source.version,
        "schema": [{"name": c.name, "type": c.type, "nullable": c.nullable} for c in s.columns],
        "splits": dict(s.splits),
        "checks": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in s.checks],
        "seed": seed,
    }


def _resources(spec: Any) -> ir.Resources:
    r = spec.resources
    acc = r.accelerator
    return ir.Resources(
        cpu=str(r.cpu) if r.cpu is not None else None, memory=r.memory,
        accelerator=acc.type if acc else None, accelerator_count=acc.count if acc else 0,
        instance_type=r.instance_type,
    )


def _gate_params(gate: Node) -> dict[str, Any]:
    metrics = [parse_threshold(m.threshold).to_params(m.metric) for m in gate.spec.metrics]
    if gate.spec.prompt is not None and not any(m["metric"] == "regression_p_value" for m in metrics):
        # The significance test of a prompt gate: its drop against the baseline's rows must
        # not be significant at the gate's alpha (the p-value is 1 without a baseline).
        metrics.append(parse_threshold(f">= {gate.spec.alpha!r}").to_params("regression_p_value"))
    return {"gate": gate.name, "metrics": metrics, "baseline": None,
            "on_missing_baseline": gate.spec.on_missing_baseline}


def gates_of_model(view: EnvView, model: Node) -> list[Node]:
    """The EvalGates evaluated in `model`'s pipeline: those naming it, and prompt gates
    without a model whose Prompt targets it. Sorted by name."""
    out = []
    for g in view.of_kind("EvalGate"):
        prompt = view.get("Prompt", g.spec.prompt) if g.spec.prompt else None
        target = g.spec.model or (prompt.spec.model if prompt is not None else None)
        if target == model.name:
            out.append(g)
    return out


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
                            "defaults": {k: v.default for k, v in sorted(ps.variables.items()) if v.default is not None},
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
            "baseline_rows": None, "seed": seed}


def lower_pipeline(resolved: Resolved, view: EnvView, model: Node) -> ir.Pipeline:
    spec = model.spec
    defaults = env_defaults(resolved, view.name)
    image = defaults["image"]
    seed = defaults["seed"]
    steps: list[ir.Step] = []
    datasets = [view.get("Dataset", u.dataset) for u in spec.datasets]
    for i, ds in enumerate(datasets):
        steps.append(ir.Step(f"check-{ds.name}", "data_check", {"dataset": _dataset_params(ds, seed)},
                             image=image, source=_source(model, ("datasets", i, "dataset"))))
    data_step = f"check-{datasets[0].name}"
    train_split = spec.datasets[0].split
    resources = _resources(spec)
    if spec.command is not None:
        c = spec.command
        train = ir.Step("train", "command", {"env": dict(sorted(c.env.items()))}, inputs={"data": data_step},
                        image=c.image, resources=resources, command=tuple(c.command) + tuple(c.args),
                        source=_source(model, ("command",)))
        task = spec.classical.task if spec.type == "classical" else "generation"
    elif spec.type == "classical":
        cl = spec.classical
        task = cl.task
        train = ir.Step("train", "train", {
            "algorithm": cl.algorithm, "task": cl.task, "target": cl.target,
            "features": list(cl.features) if cl.features is not None else None,
            "hyperparameters": dict(sorted(spec.hyperparameters.items())), "split": train_split, "seed": seed,
        }, inputs={"data": data_step}, image=image, resources=resources, source=_source(model, ("classical",)))
    else:
        llm = spec.llm
        task = "generation"
        ft = llm.finetune
        base = llm.base.path or llm.base.model
        if llm.base.from_model:
            base = f"registry://{llm.base.from_model}"
        train = ir.Step("finetune", "finetune", {
            "base_model": base, "method": ft.method if ft else "lora",
            "lora": ({"r": ft.lora.r, "alpha": ft.lora.alpha, "dropout": ft.lora.dropout,
                      "target_modules": list(ft.lora.target_modules)} if ft else None),
            "epochs": ft.epochs if ft else 1, "learning_rate": ft.learning_rate if ft else 2e-4,
            "batch_size": ft.batch_size if ft else 4, "max_seq_length": ft.max_seq_length if ft else 512,
            "prompt_field": llm.prompt_field, "response_field": llm.response_field, "split": train_split,
            "max_steps": ft.max_steps if ft else None, "seed": seed,
        }, inputs={"data": data_step}, image=image, resources=resources, source=_source(model, ("llm",)))
    steps.append(train)

    gates = gates_of_model(view, model)
    model_gates = [g for g in gates if g.spec.prompt is None]
    metrics = sorted({m.metric for g in model_gates for m in g.spec.metrics}) or _DEFAULT_METRICS[task]
    split = model_gates[0].spec.split if model_gates else "test"
    eval_params: dict[str, Any] = {"task": task, "metrics": metrics, "split": split}
    if task == "generation":
        eval_params.update({"prompt_field": spec.llm.prompt_field if spec.type == "llm" else "prompt",
                            "response_field": spec.llm.response_field if spec.type == "llm" else "response",
                            "max_new_tokens": 64})
    else:
        eval_params["target"] = spec.classical.target
    steps.append(ir.Step("evaluate", "evaluate", eval_params, inputs={"model": train.name, "data": data_step},
                         image=image, resources=resources if task == "generation" else ir.Resources(),
                         source=_source(model)))
    gate_steps = []
    checked = {ds.name for ds in datasets}
    for g in gates:
        measured = "evaluate"
        if g.spec.prompt is not None:
            ds = view.get("Dataset", g.spec.dataset)
            if ds.name not in checked:  # the gate's rows come from a dataset the model does not train on
                checked.add(ds.name)
                steps.append(ir.Step(f"check-{ds.name}", "data_check", {"dataset": _dataset_params(ds, seed)},
                                     image=image, source=_source(g, ("dataset",))))
            inputs = {"data": f"check-{ds.name}"}
            if g.spec.endpoint is None:
                inputs["model"] = train.name
            measured = f"eval-{g.name}"
            steps.append(ir.Step(measured, "evaluate", prompt_eval_params(view, g, seed), inputs=inputs, image=image,
                                 resources=resources if g.spec.endpoint is None else ir.Resources(),
                                 source=_source(g, ("prompt",))))
        step = ir.Step(f"gate-{g.name}", "gate", _gate_params(g), inputs={"metrics": measured}, image=image,
                       source=_source(g, ("metrics",)))
        steps.append(step)
        gate_steps.append(step.name)
    reg_inputs = {"model": train.name, "metrics": "evaluate"}
    for i, gs in enumerate(gate_steps):
        reg_inputs[f"gate_{i}" if i else "gate"] = gs
    steps.append(ir.Step("register", "register", {
        "registry": spec.registry.name or model.name, "model": model.name, "version": None,
        "aliases": list(spec.registry.aliases),
    }, inputs=reg_inputs, image=image, source=_source(model, ("registry",))))
    for st in (view.nodes[k] for k in view.referrers(model.key) if k.startswith("ServingTarget/")):
        if st.spec.model == model.name or model.name in st.spec.adapters:
            steps.append(ir.Step(f"deploy-{st.name}", "deploy", {
                "serving_target": st.name, "model": model.name, "env": view.name},
                inputs={"registration": "register"}, image=image, source=_source(st, ("model",))))
    sched = spec.schedule
    return ir.Pipeline(
        name=model.name, env=view.name, model=model.name, target=lower_target(view.target_name, view.target),
        steps=tuple(steps), parameters={"repo_root": "."},
        schedule=ir.Schedule(sched.cron, _source(model, ("schedule", "cron"))) if sched else None,
        artifact_root=f"{view.target.artifact_store.rstrip('/')}/{view.name}/{model.name}",
        labels=dict(sorted(model.labels.items())), source=_source(model),
    )


def engine_args_as_written(node: Node) -> dict[str, Any]:
    """The engine args with the keys the user wrote (typed fields dumped by alias)."""
    return node.spec.engine.args.model_dump(mode="json", by_alias=True, exclude_none=True)


def lower_serving(resolved: Resolved, view: EnvView, st: Node) -> ir.Serving:
    spec = st.spec
    defaults = env_defaults(resolved, view.name)
    model = view.get("Model", spec.model)
    base = model.spec.llm.base if model is not None and model.spec.type == "llm" else None
    args = engine_args_as_written(st)
    if spec.accelerator.count > 1 and "tensor-parallel-size" not in args:
        # One replica spans its GPUs by tensor parallelism unless the spec says otherwise.
        args["tensor-parallel-size"] = spec.accelerator.count
    adapters = []
    for a in spec.adapters:
        adapters.append(ir.Adapter(a, f"registry://{a}"))
    if adapters and "enable-lora" not in args:
        args["enable-lora"] = True
    target = lower_target(view.target_name, view.target)
    if spec.platform is not None:
        target = dataclasses.replace(target, serving_platform=spec.platform)
    return ir.Serving(
        name=st.name, env=view.name, target=target, model=spec.model,
        model_uri=(base.model or f"registry://{base.from_model}") if base else f"registry://{spec.model}",
        model_config=f"{base.path}/config.json" if base is not None and base.path else None,
        engine_version=spec.engine.version or defaults["vllm_version"],
        engine_args=dict(sorted(args.items())), accelerator=spec.accelerator.type,
        accelerator_count=spec.accelerator.count, replicas_min=spec.replicas.min, replicas_max=spec.replicas.max,
        canary_percent=spec.canary.traffic, adapters=tuple(adapters), gates=tuple(spec.gates),
        image=spec.image or defaults["serving_image"], instance_type=spec.instance_type,
        hf_token_secret=_k8s_secret(spec.hf_token),
        labels=dict(sorted(st.labels.items())), source=_source(st),
    )


def _k8s_secret(ref: Any) -> tuple[str, str] | None:
    """A secret reference a Kubernetes pod can mount: (name, key)."""
    if ref is None or ref.secret_ref.provider != "kubernetes":
        return None
    return ref.secret_ref.name, ref.secret_ref.key or "token"


def lower_env(resolved: Resolved, env: str) -> tuple[list[ir.Pipeline], list[ir.Serving]]:
    view = resolved.envs[env]
    pipelines = [lower_pipeline(resolved, view, m) for m in view.of_kind("Model")]
    servings = [lower_serving(resolved, view, s) for s in view.of_kind("ServingTarget")]
    return pipelines, servings
