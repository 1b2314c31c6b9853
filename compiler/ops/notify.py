"""Notifications from plan and apply: the `apply` and `drift` events of the one notifier
(specops.runtime.notify), built from a Plan and an ApplyResult, for `specops apply`, `specops
drift` and the reconcile loop alike."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from specops.ops.apply import ApplyResult, summary
from specops.ops.plan import Action, Change, Plan
from specops.runtime.notify import Delivery, Event, Notifier, deliver


def notifiers_of(project: Any) -> list[Notifier]:
    """The Project's declared notifiers (`spec.notifications`), as runtime data."""
    decl = getattr(project, "notifications", None) or {}
    return [Notifier.from_spec(name, n.model_dump()) for name, n in sorted(decl.items())]


def _change(c: Change, *, drift_diffs: bool = False) -> dict[str, Any]:
    diffs = c.drift_diffs if drift_diffs else c.diffs
    return {"address": c.address, "type": c.type, "name": c.name, "action": str(c.action), "drift": c.drift,
            "blocked": c.blocked, "diffs": [d.to_dict() for d in diffs]}


def apply_event(project_name: str, plan: Plan, result: ApplyResult, *, source: str, revision: str | None = None,
                held: Iterable[str] = ()) -> Event:
    held = sorted(held)
    line = summary(result, plan)
    if held:
        line = line.rstrip(".") + f"; {len(held)} held (drift: report): {', '.join(held)}."
    details = {"ok": result.ok, "applied": list(result.applied), "blocked": list(result.blocked),
               "not_applied": list(result.not_applied), "failed": result.failed, "error": result.error,
               "changes": [_change(c) for c in plan.changes if c.action != Action.NOOP]}
    if held:
        details["held"] = held
    return Event("apply", project_name, plan.env, source, f"env {plan.env}: {line}", target=plan.target,
                 revision=revision, details=details)


def drift_event(project_name: str, plan: Plan, *, source: str, healed: bool, revision: str | None = None) -> Event:
    drifted = plan.drifted
    names = ", ".join(c.address for c in drifted)
    verb = "healed" if healed else "found"
    return Event("drift", project_name, plan.env, source,
                 f"env {plan.env}: drift {verb} in {len(drifted)} resource(s): {names}", target=plan.target,
                 revision=revision, details={"policy": plan.policy.get("drift", "report"), "healed": healed,
                                             "resources": [_change(c, drift_diffs=True) for c in drifted]})


def send(project: Any, event: Event) -> list[Delivery]:
    return deliver(notifiers_of(project), event)
