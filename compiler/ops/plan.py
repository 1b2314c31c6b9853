"""`specops plan`: desired (compiled) vs recorded state vs live, per resource.

Actions: create | update | replace | delete | no-op | orphan (in state, no longer declared,
prune off) | drift (the live object changed behind specops's back and the env's drift policy
is `report`, so apply will not overwrite it). A resource whose live hash differs from the
state's hash is *drifted*; under `reconcile` its action is `update`.

JSON output (`--json`), schema version 1 (PLAN_SCHEMA_VERSION)::

    {"version": 1, "env": str, "target": str, "refreshed": bool, "state_serial": int | null,
     "policy": {"drift": str, "prune": bool, "require_gates": bool},
     "resources": [{"address", "type", "name", "action", "reason", "drift": bool,
                    "blocked": bool, "depends_on": [...], "spec": str | null,
                    "diffs": [{"path", "before", "after"}],        # state -> desired
                    "drift_diffs": [{"path", "before", "after"}],  # state -> live
                    "gates": [{"gate", "status", "version", "message"}]}],
     "summary": {"create": n, "update": n, "replace": n, "delete": n, "drift": n,
                 "orphan": n, "blocked": n, "no-op": n},
     "changes": bool}

Resources are listed in dependency order (ties by address); deletes last, dependents first.
Everything is sorted; no timestamps, no absolute paths.
"""

from __future__ import annotations

import graphlib
import hashlib
import heapq
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

from specops.backends.provider import ProviderError, make_provider
from specops.backends.registry import runs_on_apply
from specops.build.cache import cache_dir_of
from specops.build.compile import compile_repo
from specops.checks.rules import check_plan_rules
from specops.diagnostics import Diagnostics, suggestion
from specops.ir.lower import lower_target
from specops.ops.lock import remote_changes
from specops.ops.monitor import pending_promotions, promote_command
from specops.ops.resources import desired_resources, provider_options, required_gates
from specops.state import open_store
from specops.structdiff import FieldDiff, file_diffs

PLAN_SCHEMA_VERSION = 1


class Action(StrEnum):
    """What a plan does with one resource (the JSON carries the value)."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    DRIFT = "drift"  # changed live behind specops's back; policy `report` keeps apply off it
    ORPHAN = "orphan"  # no longer declared; prune is off, so it is left in place
    NOOP = "no-op"


class GateStatus(StrEnum):
    """A required gate's standing for one rollout."""

    PASSED = "passed"
    PENDING = "pending"  # decided by a pipeline run earlier in the same apply
    MISSING = "missing"
    FAILED = "failed"
    STALE = "stale"  # passed, but for another model version


ACTIONS = tuple(Action)
APPLY_ACTIONS = (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE)
SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-", Action.DRIFT: "!",
           Action.ORPHAN: "?", Action.NOOP: " "}
# Live fields that change on their own (timestamps, status, server bookkeeping): never drift.
BUILTIN_IGNORES = (
    "*:*.status", "*:status", "*:*.status.*", "*:status.*",
    "*:metadata.resourceVersion", "*:*.metadata.resourceVersion", "*:metadata.managedFields*",
    "*:*.metadata.managedFields*", "*:metadata.creationTimestamp", "*:*.metadata.creationTimestamp",
    "*:metadata.generation", "*:*.metadata.generation", "*:metadata.uid", "*:*.metadata.uid",
    "*:*LastModifiedTime", "*:*CreationTime", "*:ResponseMetadata*",
)
# Refresh is waiting on the network: 32 requests in flight (the SageMaker client pools 32
# connections) keep 200 resources at 80 ms a call within ~1 s of waiting.
REFRESH_WORKERS = 32


class PlanError(Exception):
    """One human line (a refresh that failed, an unknown --target): exit 1, no traceback."""


@dataclass
class Change:
    address: str
    type: str
    name: str
    action: Action
    reason: str = ""
    drift: bool = False
    diffs: list[FieldDiff] = field(default_factory=list)
    drift_diffs: list[FieldDiff] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    blocked: bool = False
    spec: str | None = None
    desired: Any = None  # provider.Desired | None
    current: Any = None  # state.ResourceState | None
    live: Any = None  # provider.Live | None

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "type": self.type, "name": self.name, "action": self.action,
                "reason": self.reason, "drift": self.drift, "blocked": self.blocked,
                "depends_on": list(self.depends_on), "spec": self.spec,
                "diffs": [d.to_dict() for d in self.diffs], "drift_diffs": [d.to_dict() for d in self.drift_diffs],
                "gates": list(self.gates)}


@dataclass
class Plan:
    env: str
    target: str
    refreshed: bool
    state_serial: int | None
    policy: dict[str, Any]
    changes: list[Change]
    # serving target name -> its capacity report summary (verdict, reason, usd_per_hour)
    capacity: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "normal", or "refresh-only": the plan only accepts live values into state
    mode: str = "normal"
    # Retrained model versions a monitor's breach registered, awaiting promotion through git
    # (ops.monitor.pending_promotions); shown next to the model's pipeline, not a change.
    promotions: list[dict[str, Any]] = field(default_factory=list)
    # What would stop apply before it starts, found by the providers' preflight (a target's
    # artifact store that does not exist): plan says so, apply refuses up front.
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in ACTIONS}
        out["blocked"] = 0
        for c in self.changes:
            out[c.action] += 1
            out["blocked"] += int(c.blocked)
        return dict(sorted(out.items()))

    @property
    def has_changes(self) -> bool:
        """What --detailed-exitcode reports as 2: anything apply would do, drift it refuses,
        and rollouts waiting for gates. Orphans are shown but are not changes (apply leaves them).
        A refresh-only plan changes state only, for every drifted resource."""
        if self.mode == "refresh-only":
            return bool(self.drifted)
        return any(c.action not in (Action.NOOP, Action.ORPHAN) for c in self.changes)

    @property
    def drifted(self) -> list[Change]:
        return [c for c in self.changes if c.drift]

    def to_dict(self) -> dict[str, Any]:
        return {"version": PLAN_SCHEMA_VERSION, "env": self.env, "target": self.target, "refreshed": self.refreshed,
                "state_serial": self.state_serial, "policy": dict(sorted(self.policy.items())),
                "resources": [c.to_dict() for c in self.changes], "summary": self.counts(),
                "changes": self.has_changes, "capacity": dict(sorted(self.capacity.items())), "mode": self.mode,
                "promotions": list(self.promotions), "problems": list(self.problems)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


# ---- field diffs ------------------------------------------------------------------------------


def align(recorded: dict[str, Any], live: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make live attributes comparable with recorded ones ({file: data}).

    A provider may read back only some files (a SageMaker pipeline has its definition, not
    the parameter files kept in S3): only those are compared. A provider that returns the
    main document itself, not keyed by file, is matched to the recorded file whose top-level
    keys it shares most.
    """
    recorded = recorded or {}
    if set(live) <= set(recorded):
        return {f: recorded[f] for f in live}, live
    best, overlap = None, 0
    for f, data in sorted(recorded.items()):
        n = len(set(data) & set(live)) if isinstance(data, dict) else 0
        if n > overlap:
            best, overlap = f, n
    if best is None:
        return recorded, live
    return {best: recorded[best]}, {best: live}


def ignored(address: str, path: str, patterns: list[str]) -> bool:
    full = f"{address}/{path}"
    return any(fnmatchcase(path, p) or fnmatchcase(full, p) for p in patterns)


# ---- ordering and targeting -----------------------------------------------------------------


def topo_order(nodes: dict[str, list[str]]) -> list[str]:
    """Addresses with their dependencies first (graphlib), and among those ready, the smallest
    address first: names only break ties. Dependencies outside `nodes` are ignored; resolved
    specs have no cycles, so a cycle here is a bug (graphlib raises)."""
    ts = graphlib.TopologicalSorter({a: [d for d in ds if d in nodes] for a, ds in nodes.items()})
    ts.prepare()
    ready: list[str] = []
    out: list[str] = []
    while ts.is_active():
        for a in ts.get_ready():
            heapq.heappush(ready, a)
        a = heapq.heappop(ready)
        out.append(a)
        ts.done(a)
    return out


def target_closure(targets: list[str], deps: dict[str, list[str]]) -> set[str]:

    out: set[str] = set()
    todo = []
    for t in targets:
        if t not in deps:
            raise PlanError(f"--target {t}: no such resource in this environment" + suggestion(t, deps))
        todo.append(t)
    while todo:
        a = todo.pop()
        if a in out:
            continue
        out.add(a)
        todo.extend(d for d in deps.get(a, []) if d in deps)
    return out


# ---- gates ------------------------------------------------------------------------------------


def is_rollout(ch: Change) -> bool:
    """A change that promotes something gates can hold back: a serving rollout, or a prompt's
    label move (prompts promote like models); not a pipeline."""
    return ch.desired is not None and not ch.type.endswith("_pipeline")


def gate_status(gates: list[str], state_gates: dict[str, Any], version: str | None, pending: bool) -> list[dict[str, Any]]:
    """Each required gate's status for a rollout of model `version` (None: not known)."""
    out = []
    for g in gates:
        rec = state_gates.get(g)
        if pending:
            status, msg = GateStatus.PENDING, "decided by the pipeline run earlier in this apply"
        elif not isinstance(rec, dict):
            status, msg = GateStatus.MISSING, "no result recorded (run the pipeline or `specops gate run`)"
        elif not rec.get("passed"):
            status, msg = GateStatus.FAILED, rec.get("message") or "the gate failed"
        elif version is not None and rec.get("version") not in (None, version):
            status, msg = GateStatus.STALE, f"passed for version {rec.get('version')}, not {version}"
        else:
            status, msg = GateStatus.PASSED, ""
        out.append({"gate": g, "status": status, "version": rec.get("version") if isinstance(rec, dict) else None,
                    "message": msg})
    return out


def rollout_gates(ch: Change, *, policy: Any, gates_for: Callable[[str, str], list[str]] | None, state: Any,
                  pending: bool = False) -> list[dict[str, Any]]:
    """The gates a rollout waits for and their status, or [] when none apply (the policy does
    not require gates, or the change is not a rollout). Plan and apply both decide here."""
    if not getattr(policy, "require_gates", False) or gates_for is None or not is_rollout(ch):
        return []
    gates = gates_for(ch.type, ch.name)
    if not gates:
        return []
    resources = state.resources if state is not None else {}
    gate_records = state.gates if state is not None else {}
    return gate_status(gates, gate_records, _model_version(ch.depends_on, resources), pending)


# ---- the plan ---------------------------------------------------------------------------------


def refresh(addresses: list[str], desired: dict[str, Any], current: dict[str, Any],
            provider_for: Callable[[str], Any]) -> dict[str, Any]:
    """Read every resource's live object in parallel (bounded pool); {address: Live}."""

    def one(a: str) -> Any:
        d, c = desired.get(a), current.get(a)
        type_ = d.type if d is not None else c.type
        try:
            return provider_for(type_).read(d, c)
        except ProviderError as e:
            raise PlanError(f"refresh of {a} failed: {e}") from None

    if not addresses:
        return {}
    with ThreadPoolExecutor(max_workers=min(REFRESH_WORKERS, len(addresses))) as pool:
        return dict(zip(addresses, pool.map(one, addresses)))


def compute_plan(desired_list: list[Any], state: Any, *, env: str, target: str, policy: Any,
                 provider_for: Callable[[str], Any] | None, refresh_live: bool = True,
                 targets: list[str] | None = None, gates_for: Callable[[str, str], list[str]] | None = None,
                 replace: list[str] | None = None, refresh_only: bool = False) -> Plan:
    """The plan for one environment. `provider_for(type)` gives a provider (refresh), `policy`
    is specs.project.Policy, `gates_for(type, name)` the gates a rollout (serving or prompt)
    needs. `replace`: addresses to re-create even when nothing changed (`--replace`);
    `refresh_only`: a plan that only accepts live values into state (`--refresh-only`)."""
    desired = {d.address: d for d in desired_list}
    current = dict(state.resources) if state is not None else {}
    deps = {a: list(d.depends_on) for a, d in desired.items()}
    for a, c in current.items():
        deps.setdefault(a, [x for x in c.depends_on])
    for a in replace or []:
        if a not in deps:
            raise PlanError(f"--replace {a}: no such resource in this environment" + suggestion(a, deps))
    scope = target_closure(targets, deps) if targets else set(deps)
    addresses = sorted(scope)
    live = refresh(addresses, desired, current, provider_for) if refresh_live and provider_for else {}
    ignores = list(BUILTIN_IGNORES) + list(getattr(policy, "ignore_changes", []) or [])
    reconcile = policy.drift == "reconcile"

    changes: dict[str, Change] = {}
    for a in addresses:
        d, c, lv = desired.get(a), current.get(a), live.get(a)
        type_ = d.type if d is not None else c.type
        ch = Change(a, type_, d.name if d is not None else c.name, Action.NOOP, depends_on=sorted(deps.get(a, [])),
                    spec=d.spec if d is not None else None, desired=d, current=c, live=lv)
        if c is not None and lv is not None:
            if not lv.exists:
                ch.drift, ch.drift_diffs = True, [FieldDiff("(object)", "exists", "deleted outside specops")]
            elif lv.content_hash != c.content_hash:
                diffs = [x for x in file_diffs(*align(c.attributes, lv.attributes)) if not ignored(a, x.path, ignores)] \
                    if lv.attributes is not None else []
                if lv.attributes is None or diffs:
                    ch.drift, ch.drift_diffs = True, diffs
        if d is None:
            ch.action = Action.DELETE if policy.prune else Action.ORPHAN
            ch.reason = "no longer declared" + ("" if policy.prune else "; prune is off, left in place")
        elif c is None:
            ch.action = Action.CREATE
            ch.diffs = file_diffs({}, d.attributes)
            if lv is not None and lv.exists and lv.content_hash == d.content_hash:
                ch.reason = "exists live with this content; apply records it"
        elif d.content_hash != c.content_hash:
            ch.diffs = file_diffs(c.attributes, d.attributes)
            replace_on = _replace_fields(provider_for, type_) if provider_for else ()
            if any(x.path.split(":", 1)[0] in replace_on or x.path in replace_on for x in ch.diffs):
                ch.action, ch.reason = Action.REPLACE, "a changed field cannot be updated in place"
            else:
                ch.action = Action.UPDATE
            if ch.drift and not reconcile:
                ch.reason = "also drifted; policy drift: report blocks apply until it is resolved"
        elif a in (replace or []):
            ch.action, ch.reason = Action.REPLACE, "forced by --replace"
        elif ch.drift:
            ch.action = Action.UPDATE if reconcile else Action.DRIFT
            ch.reason = ("changed outside specops; policy drift: reconcile overwrites it" if reconcile else
                         "changed outside specops; policy drift: report, apply refuses until it is resolved")
        if refresh_only:  # only state changes: accept what is live
            ch.action, ch.reason = Action.NOOP, "live values would be accepted into state" if ch.drift else ""
        changes[a] = ch

    # Lineage: a pipeline that reads what a changing pipeline makes retrains after it.
    for ch in changes.values():
        ups = [p for p in ch.depends_on if p in changes and changes[p].action in APPLY_ACTIONS
               and p.split(".", 1)[0].endswith("_pipeline")]
        if ups and ch.type.endswith("_pipeline") and ch.action == Action.UPDATE and not ch.reason:
            ch.reason = f"its upstream {', '.join(ups)} changes: it retrains after it and re-runs its gates"

    # Promotion: serving rollouts and prompt label moves in envs that require gates.
    for ch in changes.values():
        pending = any(changes[p].action in APPLY_ACTIONS and runs_on_apply(changes[p].type)
                      for p in ch.depends_on if p in changes)
        ch.gates = rollout_gates(ch, policy=policy, gates_for=gates_for, state=state, pending=pending)
        if ch.action in (Action.CREATE, Action.UPDATE, Action.REPLACE) and any(
                g["status"] not in (GateStatus.PASSED, GateStatus.PENDING) for g in ch.gates):
            ch.blocked = True

    order = topo_order({a: deps.get(a, []) for a in addresses if a in desired})
    deletes = [a for a in reversed(topo_order({a: deps.get(a, []) for a in addresses if a not in desired}))]
    ordered = [changes[a] for a in order] + [changes[a] for a in deletes]
    by_model = {c.spec: c.address for c in ordered if c.spec and c.spec.startswith("Model/")}
    promotions = [{**p, "address": by_model.get(f"Model/{p['model']}")} for p in pending_promotions(state)]
    return Plan(env, target, bool(refresh_live and provider_for), state.serial if state is not None else None,
                {"drift": policy.drift, "prune": policy.prune, "require_gates": policy.require_gates}, ordered,
                mode="refresh-only" if refresh_only else "normal", promotions=promotions)


def preflight(plan: Plan, provider_for: Callable[[str], Any]) -> list[str]:
    """Problems apply would hit before it changes anything, from each provider that has a
    `preflight(desired_list) -> [str]` (e.g. SageMaker: the artifact store's bucket exists),
    asked only for the resources apply would create, update or replace."""
    todo: dict[str, list[Any]] = {}
    for c in plan.changes:
        if c.action in (Action.CREATE, Action.UPDATE, Action.REPLACE) and c.desired is not None:
            todo.setdefault(c.type, []).append(c.desired)
    out: list[str] = []
    for type_, desired in sorted(todo.items()):
        check = getattr(provider_for(type_), "preflight", None)
        if check is None:
            continue
        try:
            out += [p for p in check(desired) if p not in out]
        except ProviderError as e:
            raise PlanError(f"preflight of {type_} failed: {e}") from None
    return out


def _replace_fields(provider_for: Callable[[str], Any], type_: str) -> tuple[str, ...]:
    try:
        return tuple(getattr(provider_for(type_), "REPLACE_ON", ()))
    except Exception:  # noqa: BLE001 - a provider that cannot load is reported by refresh/apply
        return ()


def _model_version(deps: list[str], current: dict[str, Any]) -> str | None:
    for p in deps:
        c = current.get(p)
        if c is not None and c.outputs.get("model_version") is not None:
            return str(c.outputs["model_version"])
    return None


# ---- loading an environment -------------------------------------------------------------------


@dataclass
class EnvContext:
    """Everything plan/apply/drift need for one environment."""

    resolved: Any
    env: str
    root: Path
    policy: Any
    target_name: str
    target: Any  # ir.Target
    desired: list[Any]
    store: Any
    options: dict[str, Any]
    diagnostics: Any
    manifest_sha256: str = ""  # of the compiled manifest: a saved plan is bound to it
    _providers: dict[str, Any] = field(default_factory=dict)
    # serving target -> capacity summary, shown next to its resource in the plan
    capacity: dict[str, dict[str, Any]] = field(default_factory=dict)

    def provider_for(self, type_: str) -> Any:

        if type_ not in self._providers:
            self._providers[type_] = make_provider(type_, env=self.env, target=self.target, root=self.root,
                                                   options=self.options)
        return self._providers[type_]

    def gates_for(self, type_: str, name: str) -> list[str]:
        kind = type_ if type_ in ("prompt", "registered_model") else "serving"
        return required_gates(self.resolved, self.env, name, kind)

    def plan(self, state: Any, *, refresh_live: bool = True, targets: list[str] | None = None,
             replace: list[str] | None = None, refresh_only: bool = False) -> Plan:
        # Providers are built before the parallel refresh so the pool never races on the cache.
        for t in sorted({d.type for d in self.desired} | {c.type for c in (state.resources.values() if state else [])}):
            self.provider_for(t)
        # Providers that adopt an existing run for the same content must not, for --replace.
        self.options["replace"] = sorted(replace or [])
        plan = compute_plan(self.desired, state, env=self.env, target=self.target_name, policy=self.policy,
                            provider_for=self.provider_for, refresh_live=refresh_live or refresh_only,
                            targets=targets, gates_for=self.gates_for, replace=replace, refresh_only=refresh_only)
        plan.capacity = dict(self.capacity)
        plan.promotions = [{**p, "command": promote_command(self.resolved, self.env, p["model"],
                                                            p.get("mlflow_version"))} for p in plan.promotions]
        if refresh_live and not refresh_only:
            # The refresh talks to the network anyway: remote data pins are checked here too.
            plan.problems = preflight(plan, self.provider_for) + remote_changes(self.resolved, self.env)
        return plan


def policy_violations(ctx: EnvContext, plan: Plan) -> Diagnostics:
    """The rules of the environment that read `plan`, over this plan's changes: what `plan`
    reports and `apply` refuses (rules over specs already ran in validate)."""
    changes = [{"address": c.address, "type": c.type, "name": c.name, "action": str(c.action)} for c in plan.changes]
    return check_plan_rules(ctx.resolved, ctx.env, changes)


def load_env(resolved: Any, env: str, options: dict[str, Any] | None = None) -> EnvContext:
    """Compile `env` and gather its desired resources, policy, state store and provider options."""


    root = resolved.repo.root
    view = resolved.envs[env]
    build = compile_repo(resolved, [env], cache_dir=cache_dir_of(root))
    desired = desired_resources(resolved, build, env) if not build.diagnostics.has_errors else []
    opts = {**provider_options(view), **(options or {})}
    store = open_store(resolved.project.state, env, root)
    ctx = EnvContext(resolved, env, root, view.env.policy, view.target_name, lower_target(view.target_name, view.target),
                     desired, store, opts, build.diagnostics,
                     manifest_sha256=hashlib.sha256(build.files()["manifest.json"]).hexdigest())
    ctx.capacity = _capacity_summaries(build, env)
    return ctx


def _capacity_summaries(build: Any, env: str) -> dict[str, dict[str, Any]]:
    """The GPU capacity verdict of each serving target, from the compiled capacity.json."""
    out = {}
    for a in build.of_env(env):
        if a.role == "report" and a.file == "capacity.json":
            rep = json.loads(a.data)
            out[a.resource] = {"verdict": rep.get("verdict"), "reason": rep.get("reason"),
                             "usd_per_hour": (rep.get("cost") or {}).get("usd_per_hour")}
    return out
