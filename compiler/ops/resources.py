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

import json
from typing import Any

from specops.backends.provider import Desired, content_hash, json_bytes

from specops.build.compile import Build
from specops.ir.lower import lower_target
from specops.resolve.refs import Resolved

PIPELINE_BACKENDS = ("kfp", "sagemaker", "zenml")
SERVING_TYPES = {"sagemaker": "sagemaker_endpoint", "kubernetes": "k8s_manifests", "kserve": "k8s_manifests",
                 "helm": "k8s_manifests"}
# Serving files that are not part of the live object (the report, and the config embedded
# in the platform files).
_SERVING_EXCLUDED = ("vllm.yaml", "capacity.json")


def parse_file(name: str, data: bytes) -> Any:
    """JSON/YAML files as data (multi-document YAML as a list); anything else by its hash."""
    import hashlib

    import yaml

    try:
        if name.endswith(".json"):
            return json.loads(data)
        if name.endswith((".yaml", ".yml")):
            docs = list(yaml.safe_load_all(data.decode("utf-8")))
            return docs[0] if len(docs) == 1 else docs
    except (ValueError, yaml.YAMLError):  # a file that does not parse (a hand edit) is compared whole
        pass
    return {"sha256": hashlib.sha256(data).hexdigest()}


def attributes_of(files: dict[str, bytes]) -> dict[str, Any]:
    return {name: parse_file(name, data) for name, data in sorted(files.items())}


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
    serving_platform: dict[str, str] = {}
    for path, art in sorted(build.artifacts.items()):
        parts = path.split("/")
        if art.env != env or len(parts) < 4 or parts[0] != env:
            continue
        kind, name, rel = parts[1], parts[2], "/".join(parts[3:])
        if kind in PIPELINE_BACKENDS:
            key = (f"{kind}_pipeline", name)
        elif kind == "serving":
            if rel in _SERVING_EXCLUDED:
                continue
            platform = "sagemaker" if art.backend == "sagemaker-endpoint" else art.backend
            if platform not in SERVING_TYPES:
                continue
            serving_platform[name] = platform
            key = (SERVING_TYPES[platform], name)
        else:
            continue
        groups.setdefault(key, {})[rel] = art.data
        specs[key] = art.spec

    pipelines = {name: f"{t}.{name}" for (t, name) in groups if t.endswith("_pipeline")}
    out: list[Desired] = []
    for (type_, name), files in sorted(groups.items()):
        deps: tuple[str, ...] = ()
        t = target
        if not type_.endswith("_pipeline"):
            node = view.get("ServingTarget", name)
            models = [node.spec.model, *node.spec.adapters] if node is not None else []
            deps = tuple(sorted({pipelines[m] for m in models if m in pipelines}))
            if node is not None and node.spec.platform is not None:
                import dataclasses

                t = dataclasses.replace(target, serving_platform=node.spec.platform)
        out.append(Desired(address=f"{type_}.{name}", type=type_, name=name, env=env,
                           content_hash=content_hash(files), files=dict(sorted(files.items())),
                           attributes=attributes_of(files), depends_on=deps, target=t, spec=specs[(type_, name)]))
    for node in view.of_kind("Prompt"):
        doc = prompt_document(node.spec, node.name, env)
        files = {"prompt.json": json_bytes(doc)}
        out.append(Desired(address=f"prompt.{node.name}", type="prompt", name=node.name, env=env,
                           content_hash=content_hash(files), files=files, attributes={"prompt.json": doc},
                           depends_on=(), target=target, spec=f"Prompt/{node.name}"))
    return sorted(out, key=lambda d: d.address)


def required_gates(resolved: Resolved, env: str, serving_name: str) -> list[str]:
    """Gates a serving rollout in `env` waits for: the ServingTarget's own `gates`, plus every
    EvalGate that `blocks` this env for the served model or one of its adapters."""
    view = resolved.envs[env]
    node = view.get("ServingTarget", serving_name)
    if node is None:
        return []
    models = {node.spec.model, *node.spec.adapters}
    gates = set(node.spec.gates)
    for g in view.of_kind("EvalGate"):
        if env in g.spec.blocks and g.spec.model in models:
            gates.add(g.name)
    return sorted(gates)
