"""One sync of one environment: plan against the live system, then apply by policy.

- The plan (with its live refresh) is made without the state lock; the lock is taken only to
  apply, for as short as that takes. Under the lock the state is read again: if another run
  (CI, a person) changed it since the plan, the plan is made again before anything is applied.
- `drift: reconcile`: drifted resources are put back (the plan's update actions), and the
  drift is reported as healed.
- `drift: report`: drifted resources, and everything that depends on them, are held: never
  applied, reported (log line, metric, `drift` notification). Changes from git to other
  resources are applied, as Flux's `driftDetection: warn` does.
- A lock held by someone else is an error for this pass (the loop backs off and tries again);
  a lock left by an earlier run of this same reconciler (same `--id`: it was killed mid-apply)
  is released and the work resumes, which is what makes a kill lose nothing: every action is
  recorded in state the moment it lands, and the next plan holds only what is left.

Notifications: an `apply` event when something was applied or the outcome changed (failed,
blocked), a `drift` event when the set of drifted resources changes, never the same news
every interval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from specops.backends.provider import ProviderError
from specops.ops import audit
from specops.ops.apply import ApplyResult, execute, summary
from specops.ops.notify import apply_event, drift_event, send
from specops.ops.plan import (
    APPLY_ACTIONS,
    Action,
    EnvContext,
    GateStatus,
    Plan,
    PlanError,
    load_env,
    policy_violations,
)
from specops.reconcile.metrics import STATUSES, Metrics
from specops.runtime.errors import StepError
from specops.state import State, StateError

ONE_LINE = (StateError, PlanError, ProviderError, StepError)


@dataclass
class EnvOutcome:
    env: str
    result: str  # metrics.RESULTS
    message: str
    applied: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)


def held_by_drift(plan: Plan) -> set[str]:
    """Under `drift: report`: the drifted resources and everything that depends on them."""
    held = {c.address for c in plan.drifted if c.action != Action.ORPHAN}
    grew = True
    while grew:
        grew = False
        for c in plan.changes:
            if c.address not in held and any(d in held for d in c.depends_on):
                held.add(c.address)
                grew = True
    return held


def without(plan: Plan, held: set[str]) -> Plan:
    """`plan` with the held resources' actions turned into `drift` (execute skips them)."""
    changes = [dataclasses.replace(c, action=Action.DRIFT, reason="held: drifted (or depends on a drifted resource) "
                                   "under policy drift: report")
               if c.address in held and c.action in APPLY_ACTIONS else c for c in plan.changes]
    return dataclasses.replace(plan, changes=changes)


def statuses(plan: Plan, result: ApplyResult | None, held: set[str]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    applied = set(result.applied) if result else set()
    blocked = set(result.blocked) if result else set()
    for c in plan.changes:
        if c.address in held or c.action == Action.DRIFT:
            s = "drifted"
        elif c.action == Action.ORPHAN:
            s = "orphaned"
        elif c.address in blocked:
            s = "blocked"
        elif c.action == Action.NOOP or c.address in applied:
            s = "synced"
        else:
            s = "out_of_sync"
        out[s] += 1
    return out


def gate_blocks(plan: Plan, result: ApplyResult | None) -> dict[str, int]:
    out: dict[str, int] = {}
    blocked = set(result.blocked) if result else set()
    for c in plan.changes:
        if c.address in blocked:
            for g in c.gates:
                if g["status"] not in (GateStatus.PASSED, GateStatus.PENDING):
                    out[g["gate"]] = out.get(g["gate"], 0) + 1
    return out


def _fingerprint(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class Engine:
    def __init__(self, *, log: Callable[..., None], metrics: Metrics, identity: str, lock_timeout: float = 0.0,
                 notify: bool = True, now: Callable[[], float] = time.time) -> None:
        self.log, self.metrics, self.identity = log, metrics, identity
        self.lock_timeout, self.notify, self.now = lock_timeout, notify, now
        self._told: dict[tuple[str, str], str] = {}  # (env, event) -> fingerprint of what was last notified

    @property
    def operation(self) -> str:
        return f"reconcile {self.identity}"

    def sync(self, resolved: Any, envs: list[str], revision: str) -> list[EnvOutcome]:
        return [self.sync_env(resolved, env, revision) for env in envs]

    def sync_env(self, resolved: Any, env: str, revision: str) -> EnvOutcome:
        try:
            return self._sync_env(resolved, env, revision)
        except ONE_LINE as e:
            return self._error(env, str(e), revision)
        except Exception as e:
            if os.environ.get("SPECOPS_DEBUG"):
                raise
            return self._error(env, f"{type(e).__name__}: {e} [internal]", revision)

    def _error(self, env: str, msg: str, revision: str) -> EnvOutcome:
        self.log("sync_error", f"env {env}: {msg}; nothing more applied", level="error", env=env, revision=revision)
        self.metrics.record(env, "error", self.now())
        return EnvOutcome(env, "error", msg)

    def _sync_env(self, resolved: Any, env: str, revision: str) -> EnvOutcome:
        ctx = load_env(resolved, env)
        if ctx.diagnostics.has_errors:
            first = ctx.diagnostics.sorted()[0]
            raise PlanError(f"compile failed: {first.headline()}")
        state = ctx.store.read()
        plan = ctx.plan(state)
        violations = policy_violations(ctx, plan)
        if violations.has_errors:  # a rule over the plan holds the whole environment, as in `apply`
            raise PlanError(f"policy: {violations.sorted()[0].headline()}")
        held = set() if plan.policy.get("drift") == "reconcile" else held_by_drift(plan)
        drifted = [c.address for c in plan.drifted]
        if drifted:
            self.log("drift", f"env {env}: {len(drifted)} resource(s) changed outside specops: {', '.join(drifted)}; "
                     + ("healing (drift: reconcile)" if not held else "reported, held (drift: report)"),
                     level="warning", env=env, revision=revision, resources=drifted, policy=plan.policy.get("drift"))
        result: ApplyResult | None = None
        if any(c.action in APPLY_ACTIONS and c.address not in held for c in plan.changes):
            result, plan, held = self._apply(ctx, plan, state, held, revision)
        outcome = self._outcome(env, plan, result, held, revision)
        self._notify(ctx, plan, result, held, revision)
        return outcome

    def _lock(self, ctx: EnvContext) -> Any:
        """The state lock for this apply. A lock left by an earlier run of this reconciler (same
        identity; it was killed mid-apply) is released first: this loop syncs one environment at
        a time, so a lock under its own name that it does not hold is a dead predecessor's."""
        held = ctx.store.current_lock()
        if held is not None and held.operation == self.operation:
            ctx.store.force_unlock(held.id)
            self.log("lock_takeover", f"env {ctx.env}: released the lock left by an earlier run of this reconciler "
                     f"({held.owner}, pid {held.pid}, since {held.created}); resuming its work", level="warning",
                     env=ctx.env, lock_id=held.id)
        return ctx.store.lock(self.operation, timeout=self.lock_timeout)

    def _apply(self, ctx: EnvContext, plan: Plan, state: Any, held: set[str],
               revision: str) -> tuple[ApplyResult, Plan, set[str]]:
        env = ctx.env
        with self._lock(ctx):
            dead = getattr(ctx.store, "took_over", None)
            if dead is not None:
                self.log("lock_takeover", f"env {env}: released the lock of pid {dead.pid} ({dead.operation}), no "
                         "longer running on this host", level="warning", env=env)
            current = ctx.store.read()
            if _version(current) != _version(state):
                self.log("replan", f"env {env}: state changed since the plan (serial {_version(state)[1]} -> "
                         f"{_version(current)[1]}); planning again under the lock", env=env, revision=revision)
                plan = ctx.plan(current)
                held = set() if plan.policy.get("drift") == "reconcile" else held_by_drift(plan)
            todo = [c.address for c in plan.changes if c.action in APPLY_ACTIONS and c.address not in held]
            self.log("apply_start", f"env {env}: applying {len(todo)} change(s) at {revision[:12]}", env=env,
                     revision=revision, resources=todo)
            applying, todo_plan = current or State.new(env), without(plan, held)
            result = execute(ctx, todo_plan, applying,
                             echo=lambda line: self.log("action", line.strip(), env=env, revision=revision))
            problem = audit.record(ctx.store, audit.entry(
                ctx.root, todo_plan, result=result, state_serial=applying.serial,
                actor={"who": self.operation, "via": "reconcile", "commit": revision, "dirty": False}))
            if problem:
                self.log("history", f"env {env}: {problem}", level="warning", env=env)
        level = "info" if result.failed is None else "error"
        self.log("apply", f"env {env}: {summary(result, plan)}", level=level, env=env, revision=revision,
                 applied=result.applied, blocked=result.blocked or None, failed=result.failed)
        return result, plan, held

    def _outcome(self, env: str, plan: Plan, result: ApplyResult | None, held: set[str], revision: str) -> EnvOutcome:
        if result is not None and result.failed:
            res, msg = "error", f"apply stopped at {result.failed}: {result.error}"
        elif result is not None and result.blocked:
            res, msg = "blocked", f"{len(result.blocked)} rollout(s) blocked by gates"
        else:
            res, msg = "success", "in sync" if not held else f"in sync except {len(held)} held resource(s)"
        applied = set(result.applied) if result else set()
        healed = [c.address for c in plan.drifted if c.address in applied]
        self.metrics.record(env, res, self.now(), drifted=len(plan.drifted) - len(healed), healed=len(healed),
                            statuses=statuses(plan, result, held),
                            gate_blocks=gate_blocks(plan, result), applied=len(result.applied) if result else 0)
        return EnvOutcome(env, res, msg, list(result.applied) if result else [], list(result.blocked) if result else [],
                          sorted(held), [c.address for c in plan.drifted])

    def _notify(self, ctx: EnvContext, plan: Plan, result: ApplyResult | None, held: set[str], revision: str) -> None:
        if not self.notify:
            return
        name = ctx.resolved.project_name
        events = []
        healed = bool(plan.drifted) and not held and result is not None and result.failed is None
        drift_key = _fingerprint([(c.address, [d.to_dict() for d in c.drift_diffs]) for c in plan.drifted])
        if plan.drifted and self._told.get((ctx.env, "drift")) != drift_key:
            events.append(drift_event(name, plan, source="reconcile", healed=healed, revision=revision))
        self._told[(ctx.env, "drift")] = "" if healed or not plan.drifted else drift_key
        if result is not None:
            key = _fingerprint([result.failed, result.error, result.blocked, sorted(held)])
            if result.applied or self._told.get((ctx.env, "apply")) != key:
                events.append(apply_event(name, plan, result, source="reconcile", revision=revision, held=held))
            self._told[(ctx.env, "apply")] = key
        for ev in events:
            for d in send(ctx.resolved.project, ev):
                if not d.ok:
                    self.log("notify_error", f"{d.error}; not notified", level="warning", env=ctx.env)
                else:
                    self.log("notify", f"notifier '{d.notifier}': sent {d.event}", env=ctx.env)


def _version(state: Any) -> tuple[str | None, int | None]:
    return (state.lineage, state.serial) if state is not None else (None, None)
