"""Compiled build -> the desired resources of one environment (what plan/apply manage).

Addresses (`<type>.<name>`):
    <backend>_pipeline.<model>      zenml_pipeline | kfp_pipeline | sagemaker_pipeline: every
                                    artifact under `<env>/<backend>/<model>/`
    sagemaker_endpoint.<serving>    serving on SageMaker: the platform files under
    k8s_manifests.<serving>         `<env>/serving/<name>/` (kubernetes | kserve | helm); the
                                    vLLM config is inside them, so vllm.yaml and the capacity
                                    report are not part of the resource. Local serving has no
                                    live object and no resource.
    <backend>_pipeline.monitor-<m>  a Monitor's scheduled job (`<env>/monitors/<m>/<backend>/`):
                                    its pipeline and schedule (EventBridge, recurring run, ZenML)
    cloudwatch_alarms.<monitor>     a Monitor's CloudWatch alarms on a SageMaker endpoint
    k8s_manifests.monitor-<m>       a Monitor's PrometheusRule, written into the GitOps directory
    prompt.<name>                   a Prompt's rendered version, this env's labels and their
                                    MLflow aliases (`<env>`, `<env>-<label>`)
    registered_model.<model>        this env's aliases of the Model's registered version (the one
                                    its pipeline registered, or the pinned one) and the version's
                                    model card; where apply runs the pipeline, or the env pins a
                                    version (on KFP and SageMaker the run's register step moves them)

A resource's content hash is `provider.content_hash(files)`; its attributes are the parsed
files ({file: JSON/YAML data}) so plan can show field-level diffs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from specops.backends.mlflow_provider import prompt_aliases
from specops.backends.provider import Desired, attributes_of, content_hash, json_bytes
from specops.backends.registry import ALERTING, pipeline_backend, platform_of_artifact_backend, runs_on_apply
from specops.build.manifest import Build
from specops.ir.lower import lower_pipeline, lower_target
from specops.resolve.lineage import upstream_models
from specops.resolve.refs import EnvView, Resolved
from specops.runtime import tracking


def prompt_document(spec: Any, name: str, env: str) -> dict[str, Any]:
    """The prompt version as the registry stores it, with this env's labels and their aliases."""
    labels = sorted(spec.labels.get(env, []))
    doc: dict[str, Any] = {
        "name": name, "version": spec.version, "model": spec.model,
        "variables": {k: v.model_dump(mode="json", exclude_none=True) for k, v in sorted(spec.variables.items())},
        "parameters": spec.parameters.model_dump(mode="json", exclude_none=True, by_alias=True),
        "labels": labels, "aliases": prompt_aliases(env, labels, spec.version),
    }
    if spec.template is not None:
        doc["template"] = spec.template
    else:
        doc["messages"] = [m.model_dump(mode="json") for m in spec.messages or []]
    return doc


def provider_options(view: EnvView) -> dict[str, Any]:
    """What every provider of the environment's target is made with. Secret references (where
    a secret lives), never values: the provider reads them when it connects."""
    reg = view.target.registry
    cred = view.target.credentials
    return {"gitops_dir": view.target.serving.gitops_dir,
            "credentials": cred.secret_ref.model_dump(mode="json") if cred else None,
            "registry": {"uri": reg.tracking_uri,
                         "token": reg.token.secret_ref.model_dump(mode="json") if reg.token else None}}


def desired_resources(resolved: Resolved, build: Build, env: str) -> list[Desired]:
    """Every resource the specs declare in `env`, sorted by address."""
    view = resolved.envs[env]
    target = lower_target(view.target_name, view.target)
    groups: dict[tuple[str, str], dict[str, bytes]] = {}
    specs: dict[tuple[str, str], str] = {}
    for art in build.of_env(env):
        # Only pipeline files and a serving target's deployment files are live objects: its
        # vLLM config is embedded in them, and its capacity report is for people.
        if art.role == "pipeline":
            type_ = pipeline_backend(art.backend).RESOURCE_TYPE
        elif art.role == "serving":
            platform = platform_of_artifact_backend(art.backend)
            if platform is None or platform.RESOURCE_TYPE is None:
                continue
            type_ = platform.RESOURCE_TYPE
        elif art.role == "monitor" and art.backend in ALERTING and art.file in ALERTING[art.backend].RESOURCE_FILES:
            alerting = ALERTING[art.backend]
            key = (alerting.RESOURCE_TYPE, alerting.resource_name(art.resource))
            groups.setdefault(key, {})[art.file] = art.data
            specs[key] = art.spec
            continue
        else:
            continue
        key = (type_, art.resource)
        groups.setdefault(key, {})[art.file] = art.data
        specs[key] = art.spec

    pipelines = {name: f"{t}.{name}" for (t, name) in groups if t.endswith("_pipeline")}
    out: list[Desired] = []
    for (type_, name), files in sorted(groups.items()):
        deps: tuple[str, ...] = ()
        t = target
        if specs[(type_, name)].startswith("Monitor/"):
            # A monitor's job, alarms and rules need nothing applied first (an alarm or rule on a
            # server not yet deployed is quiet), and waiting on a gated rollout would hold them back.
            pass
        elif type_.endswith("_pipeline"):
            # Lineage: a pipeline reading a Dataset another model makes runs after that model's.
            node = view.get("Model", name)
            deps = tuple(sorted({pipelines[m] for m in (upstream_models(view, node) if node is not None else [])
                                 if m in pipelines}))
        else:
            node = view.get("ServingTarget", name)
            models = [node.spec.model, *node.spec.adapters] if node is not None else []
            deps = tuple(sorted({pipelines[m] for m in models if m in pipelines}))
            if node is not None and node.spec.platform is not None:
                t = dataclasses.replace(target, serving_platform=node.spec.platform)
        out.append(Desired(address=f"{type_}.{name}", type=type_, name=name, env=env,
                           content_hash=content_hash(files), files=dict(sorted(files.items())),
                           attributes=attributes_of(files), depends_on=deps, target=t, spec=specs[(type_, name)]))
    for node in view.of_kind("Prompt"):
        doc = prompt_document(node.spec, node.name, env)
        files = {"prompt.json": json_bytes(doc)}
        # A label move waits for the pipelines that evaluate the prompt's gates (they run first).
        models = {g.spec.model or node.spec.model for g in view.of_kind("EvalGate") if g.spec.prompt == node.name}
        deps = tuple(sorted({pipelines[m] for m in models if m in pipelines}))
        out.append(Desired(address=f"prompt.{node.name}", type="prompt", name=node.name, env=env,
                           content_hash=content_hash(files), files=files, attributes={"prompt.json": doc},
                           depends_on=deps, target=target, spec=f"Prompt/{node.name}"))
    out.extend(registered_models(resolved, view, build, env, target, pipelines))
    return sorted(out, key=lambda d: d.address)


def _capacity(build: Build, env: str, view: EnvView, model: str) -> dict[str, Any]:
    """What the card says about where the model is served: each serving target's GPU fit."""
    out = {}
    serving = {st.name for st in view.of_kind("ServingTarget") if model == st.spec.model or model in st.spec.adapters}
    for a in build.of_env(env):
        if a.role == "report" and a.file == "capacity.json" and a.resource in serving:
            rep = json.loads(a.data)
            out[a.resource] = {"gpu": (rep.get("gpu") or {}).get("name"), "gpus": (rep.get("gpu") or {}).get("count"),
                               "usd_per_hour": (rep.get("cost") or {}).get("usd_per_hour"),
                               "kv_headroom": (rep.get("memory_per_gpu") or {}).get("headroom"),
                               "verdict": rep.get("verdict")}
    return dict(sorted(out.items()))


def registered_models(resolved: Resolved, view: EnvView, build: Build, env: str, target: Any,
                      pipelines: dict[str, str]) -> list[Desired]:
    """`registered_model.<model>`: this env's aliases of the version its pipeline registered
    (found by the spec digest the register step records) or of the pinned version."""
    out = []
    for node in view.of_kind("Model"):
        address = pipelines.get(node.name)
        pin = node.spec.registry.pin
        if address is None or not (runs_on_apply(address.split(".", 1)[0]) or pin is not None):
            continue
        pipe = lower_pipeline(resolved, view, node)
        reg = pipe.step("register").params if pipe is not None else None
        if reg is None:
            continue
        if pin is not None:
            source: dict[str, Any] = {"pin": pin.model_dump(mode="json")}
            points = f"version {pin.version}"
        else:
            source = {"spec_digest": reg["spec_digest"]}
            points = f"spec {reg['spec_digest'][:12]}"
        aliases = [tracking.env_alias(env), *(tracking.label_alias(env, a) for a in node.spec.registry.aliases)]
        doc = {"registry": reg["registry"], "model": node.name, "env": env, "version_of": source,
               "aliases": {a: points for a in sorted(set(aliases))},
               "card": {"description": reg.get("description"), "capacity": _capacity(build, env, view, node.name)}}
        files = {"model.json": json_bytes(doc)}
        out.append(Desired(address=f"registered_model.{node.name}", type="registered_model", name=node.name, env=env,
                           content_hash=content_hash(files), files=files, attributes={"model.json": doc},
                           depends_on=(address,), target=target, spec=f"Model/{node.name}"))
    return out


def required_gates(resolved: Resolved, env: str, serving_name: str, type_: str = "serving") -> list[str]:
    """Gates a rollout in `env` waits for. A serving rollout: the ServingTarget's own `gates`,
    plus every EvalGate that `blocks` this env for the served model or one of its adapters. A
    prompt's label move (`type_` "prompt"): every EvalGate over that Prompt that blocks this env.
    A model's alias move (`type_` "registered_model"): every EvalGate over the Model that blocks it."""
    view = resolved.envs[env]
    if type_ == "prompt":
        return sorted(g.name for g in view.of_kind("EvalGate") if g.spec.prompt == serving_name and env in g.spec.blocks)
    if type_ == "registered_model":  # an alias move promotes the model: its blocking gates
        return sorted(g.name for g in view.of_kind("EvalGate") if g.spec.model == serving_name and env in g.spec.blocks)
    node = view.get("ServingTarget", serving_name)
    if node is None:
        return []
    models = {node.spec.model, *node.spec.adapters}
    gates = set(node.spec.gates)
    for g in view.of_kind("EvalGate"):
        if env in g.spec.blocks and g.spec.model in models:
            gates.add(g.name)
    return sorted(gates)
