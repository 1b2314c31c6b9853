"""Rule: a policy rule in CEL over the resolved specs and the plan (not an environment's
`policy:` block, which sets drift, prune and gates).

    apiVersion: specops.dev/v1alpha1
    kind: Rule
    metadata: {name: serving-budget}
    environments: [prod]                 # where the rule applies (the envelope's field)
    spec:
      kinds: [ServingTarget]
      expression: cost_per_hour <= 50
      message: prod serving must cost at most $50 an hour

Bindings (documented in README, checked at validate: an unknown name is an error at the
rule's line): per resource `kind`, `name`, `env`, `labels`, `spec` (the resolved spec, keys
as written), and for ServingTargets `cost_per_hour`, `kv_headroom`, `gpus`, `gates`; in
`plan`, `plan.changes` (a list of {address, type, name, action}).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import SpecModel

# The kinds a rule can be checked on (the Project is the rules' context, not a resource).
RESOURCE_KINDS = ("Dataset", "Model", "Prompt", "EvalGate", "ServingTarget")


class RuleSpec(SpecModel, defer_build=True):
    # A CEL expression that must hold (be true) for every resource it is checked on. Bounded:
    # spec authors are semi-trusted, and specops.checks.rules also bounds its size and cost.
    expression: str = Field(min_length=1, max_length=2000)
    # What a violation says; the expression when absent.
    message: str | None = Field(default=None, max_length=500)
    # The kinds of resource it is checked on; all when empty. A rule that reads only `plan`
    # and `env` is checked once per plan.
    kinds: list[Literal["Dataset", "Model", "Prompt", "EvalGate", "ServingTarget"]] = Field(default_factory=list)
    # error: validate/plan fail and apply refuses; warning: reported only.
    severity: Literal["error", "warning"] = "error"
