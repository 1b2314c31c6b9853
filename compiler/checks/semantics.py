"""Semantic checks that need more than one field, one module per kind of spec (prompts,
gates, data, serving) plus secrets anywhere; this module runs them over every environment.

With `records` (build/checkrecords.py: what the last run found, by unit of the dependency
index, build/units.py), a node's checks whose unit is unchanged since that run are not run
again: their diagnostics are replayed, in the order a run without records adds them. This
holds because each per-node check reads only the node, nodes it names (each a resolver edge
or a judge link: the same unit), the Project, and repo files the specs name, which are what
a unit's signature hashes. What reads across units (the target registry, the lock file,
rules) always runs, and rules replay by their own records (checks/rules.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from specops.checks.common import at
from specops.checks.data import check_dataset, check_lockfile, check_model
from specops.checks.gates import check_gate
from specops.checks.monitors import check_monitor
from specops.checks.names import check_registry_name
from specops.checks.prompts import check_prompt
from specops.checks.records import CheckRecords, replayed
from specops.checks.rules import check_rules
from specops.checks.secrets import check_notifier_refs, check_plaintext_secrets, check_secret_refs
from specops.checks.serving import check_serving
from specops.checks.targets import check_targets
from specops.diagnostics import Diagnostics, suggestion
from specops.ir.monitors import job_name

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved


def check_semantics(resolved: Resolved, out: Diagnostics, records: CheckRecords | None = None) -> None:
    check_plaintext_secrets(resolved, out, records)
    check_notifier_refs(resolved, out)
    check_targets(resolved, out)
    check_lockfile(resolved, out)
    envs = resolved.project.environments
    # A spec without overrides is the same document in every environment: checks that do
    # not depend on the environment run once per document.
    seen: set[int] = set()

    def first_time(node: Node) -> bool:
        if id(node.doc) in seen:
            return False
        seen.add(id(node.doc))
        return True

    def each(view: EnvView, node: Node, run: Callable[[Diagnostics], Any], call: str | None = None) -> None:
        replayed(records, records.unit(view, node.key) if records is not None else None, call or node.key, out, run)

    for view in resolved.envs.values():
        for node in view.of_kind("Prompt"):
            if first_time(node):
                each(view, node, lambda o, node=node: check_prompt_node(resolved, node, envs, o))
        for node in view.of_kind("EvalGate"):
            each(view, node, lambda o, node=node, view=view: check_gate_node(resolved, view, node, envs, o))
        for node in view.of_kind("Dataset"):
            if first_time(node):
                each(view, node, lambda o, node=node, view=view: check_dataset(resolved, view, node, o))
        for node in view.of_kind("Model"):
            each(view, node, lambda o, node=node, view=view: (check_model(resolved, view, node, o),
                                                        check_registry_name(view, node, o)))
        for node in view.of_kind("ServingTarget"):
            each(view, node, lambda o, node=node, view=view: (check_serving(resolved, view, node, o),
                                                        check_secret_refs(view, node, o)))
        for node in view.of_kind("Monitor"):
            # A monitor also reads whether a Model has its scheduled job's name, which no
            # reference links: that is part of what its record is kept under.
            clash = view.get("Model", job_name(node.name)) is not None
            each(view, node, lambda o, node=node, view=view: check_monitor(resolved, view, node, o),
                 f"{node.key}|{clash}")
    # Last: a rule is not checked on a spec that already has errors of its own.
    check_rules(resolved, out, records)
    if records is not None:
        records.save()


def check_prompt_node(resolved: Resolved, node: Node, envs: Any, out: Diagnostics) -> None:
    check_prompt(resolved, node, out)
    for env in node.spec.labels:
        if env not in envs:
            out.add(at(node, ("labels", env), "unknown-env", f"labels name unknown environment '{env}'"
                       + suggestion(env, envs), prefer_key=True))


def check_gate_node(resolved: Resolved, view: EnvView, node: Node, envs: Any, out: Diagnostics) -> None:
    check_gate(resolved, view, node, out)
    for i, env in enumerate(node.spec.blocks):
        if env not in envs:
            out.add(at(node, ("blocks", i), "unknown-env", f"unknown environment '{env}'" + suggestion(env, envs)))
