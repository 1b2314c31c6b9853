"""`specops render --env E`: the effective specs of one environment as YAML.

Overrides are applied and defaults filled, so a reviewer sees exactly what compiles.
Deterministic: documents sorted by kind then name, keys in schema order.
"""

from __future__ import annotations

from typing import Any

import yaml

from specops.frontend.overrides import deep_merge, effective_document
from specops.resolve.refs import Resolved
from specops.specs import KINDS


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def render_env(resolved: Resolved, env: str) -> str:
    return "".join("---\n" + _dump(doc) for doc in render_env_documents(resolved, env))


def render_env_documents(resolved: Resolved, env: str) -> list[dict[str, Any]]:
    """The environment itself, then every spec as it is there (`render --json`)."""
    view = resolved.envs[env]
    project = resolved.repo.project()
    env_spec = resolved.project.environments[env]
    defaults = resolved.project.defaults.model_dump(mode="json", by_alias=True, exclude_none=True)

    head = {
        "apiVersion": project.model.api_version,
        "kind": "Environment",
        "metadata": {"name": env, "project": resolved.project_name},
        "spec": {
            "target": {"name": env_spec.target,
                       **view.target.model_dump(mode="json", by_alias=True, exclude_none=True)},
            "policy": env_spec.policy.model_dump(mode="json", by_alias=True, exclude_none=True),
            "defaults": deep_merge(defaults, env_spec.defaults),
        },
    }
    order = {k: i for i, k in enumerate(KINDS)}
    nodes = sorted(view.nodes.values(), key=lambda n: (order.get(n.kind, len(order)), n.kind, n.name))
    return [head] + [effective_document(node) for node in nodes]
