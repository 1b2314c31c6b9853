"""Compiled build -> the desired resources of one environment (what plan/apply manage).

Addresses (`<type>.<name>`):
    <backend>_pipeline.<model>      zenml_pipeline | kfp_pipeline | sagemaker_pipeline: every
                                    artifact under `<env>/<backend>/<model>/`
    sagemaker_endpoint.<serving>    serving on SageMaker: the platform files under
    k8s_manifests.<serving>         `<env>/serving/<name>/` (kubernetes | kserve | helm); the
                                    vLLM config is inside them, so vllm.yaml and the capacity
                                    report are not part of the resource. Local serving has no
                                    live object and no resource.
    prompt.<name>                   a Prompt's rendered version and this env's labels

A resource's content hash is `provider.content_hash(files)`; its attributes are the parsed
files ({file: JSON/YAML data}) so plan can show field-level diffs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from specops.backends.provider import Desired, attributes_of, content_hash, json_bytes
from specops.backends.registry import pipeline_backend, platform_of_artifact_backend
from specops.build.manifest import Build
from specops.ir.lower import lower_target
from specops.resolve.lineage import upstream_models
from specops.resolve.refs import Resolved


def prompt_document(spec: Any, name: str, env: str) -> dict[str, Any]:
    """The prompt version as the registry stores it, with this env's labels."""
    doc: dict[str, Any] = {
        "name": name, "version": spec.version, "model": spec.model,
        "variables": {k: v.model_dump(mode="json", exclude_none=True) for k, v in sorted(spec.variables.items())},
        "parameters": spec.parameters.model_dump(mode="json", exclude_none=True, by_alias=True),
        "labels": sorted(spec.labels.get(env, [])),
    }
    if spec.template is not None:
        doc["template"] = spec.template
    else:
        doc["messages"] = [m.model_dump(mode="json") for m in spec.messages or []]
    return doc


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
        if type_.endswith("_pipeline"):
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
    return sorted(out, key=lambda d: d.address)


def required_gates(resolved: Resolved, env: str, serving_name: str, type_: str = "serving") -> list[str]:
    """Gates a rollout in `env` waits for. A serving rollout: the ServingTarget's own `gates`,
    plus every EvalGate that `blocks` this env for the served model or one of its adapters. A
    prompt's label move (`type_` "prompt"): every EvalGate over that Prompt that blocks this env."""
    view = resolved.envs[env]
    if type_ == "prompt":
        return sorted(g.name for g in view.of_kind("EvalGate") if g.spec.prompt == serving_name and env in g.spec.blocks)
    node = view.get("ServingTarget", serving_name)
    if node is None:
        return []
    models = {node.spec.model, *node.spec.adapters}
    gates = set(node.spec.gates)
    for g in view.of_kind("EvalGate"):
        if env in g.spec.blocks and g.spec.model in models:
            gates.add(g.name)
    return sorted(gates)
