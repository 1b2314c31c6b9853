"""Semantic checks that need more than one field, one module per kind of spec (prompts,
gates, data, serving) plus secrets anywhere; this module runs them over every environment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specops.checks.common import at
from specops.checks.data import check_dataset, check_lockfile, check_model
from specops.checks.gates import check_gate
from specops.checks.monitors import check_monitor
from specops.checks.names import check_registry_name
from specops.checks.prompts import check_prompt
from specops.checks.rules import check_rules
from specops.checks.secrets import check_notifier_refs, check_plaintext_secrets, check_secret_refs
from specops.checks.serving import check_serving
from specops.checks.targets import check_targets
from specops.diagnostics import Diagnostics, suggestion

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import Resolved


def check_semantics(resolved: "Resolved", out: Diagnostics) -> None:
    check_plaintext_secrets(resolved, out)
    check_notifier_refs(resolved, out)
    check_targets(resolved, out)
    check_lockfile(resolved, out)
    envs = resolved.project.environments
    # A spec without overrides is the same document in every environment: checks that do
    # not depend on the environment run once per document.
    seen: set[int] = set()

    def first_time(node: "Node") -> bool:
        if id(node.doc) in seen:
            return False
        seen.add(id(node.doc))
        return True

    for view in resolved.envs.values():
        for node in view.of_kind("Prompt"):
            if not first_time(node):
                continue
            check_prompt(resolved, node, out)
            for i, env in enumerate(node.spec.labels):
                if env not in envs:
                    out.add(at(node, ("labels", env), "unknown-env", f"labels name unknown environment '{env}'"
                                + suggestion(env, envs), prefer_key=True))
        for node in view.of_kind("EvalGate"):
            check_gate(resolved, view, node, out)
            for i, env in enumerate(node.spec.blocks):
                if env not in envs:
                    out.add(at(node, ("blocks", i), "unknown-env", f"unknown environment '{env}'"
                                + suggestion(env, envs)))
        for node in view.of_kind("Dataset"):
            if first_time(node):
                check_dataset(resolved, view, node, out)
        for node in view.of_kind("Model"):
            check_model(resolved, view, node, out)
            check_registry_name(view, node, out)
        for node in view.of_kind("ServingTarget"):
            check_serving(resolved, view, node, out)
            check_secret_refs(view, node, out)
        for node in view.of_kind("Monitor"):
            check_monitor(resolved, view, node, out)
    # Last: a rule is not checked on a spec that already has errors of its own.
    check_rules(resolved, out)
