"""`specops apply`: execute a plan in dependency order, recording each action as it lands.

Crash safety: before any work on a resource starts, its intent (the action, the content hash
and the key of the run it starts) is written to the state; the state is written again
(atomically) the moment the action lands, clearing the intent. A kill -9 anywhere loses at
most the action in flight, and the next apply resumes it under the same run key: a provider
adopts a run already started or finished for that key (waiting for it when it is still
running) instead of starting another. `--replace` is the deliberate exception: its intent
carries a fresh run key. Throttling / 5xx (`RetryableError`) are retried
with tenacity's jittered exponential backoff; any other provider error stops the apply with
a report of what landed and what did not.

Promotion: in an env whose policy requires gates, a serving rollout (or a prompt's label
move, gated by the EvalGates over that prompt that block the env) is checked against
`state.gates` right before it is applied (a pipeline run earlier in the same apply records
its gate verdicts first); a rollout whose gates did not pass for the model version is
skipped and reported as blocked.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from specops.backends import zenml
from specops.backends.crashpoint import pause_point
from specops.backends.mlflow_provider import client_for, migrate_legacy_prompts
from specops.backends.provider import ProviderError, retrying
from specops.backends.zenml_run import run_local
from specops.diagnostics import suggestion
from specops.ir.lower import _gate_params, gate_model, lower_pipeline
from specops.ops.plan import APPLY_ACTIONS, Action, Change, GateStatus, Plan, align, rollout_gates
from specops.runtime import tracking
from specops.runtime.gate import _check
from specops.runtime.thresholds import Threshold
from specops.state import ResourceState, State

VERBS = {Action.CREATE: "creating", Action.UPDATE: "updating", Action.REPLACE: "replacing", Action.DELETE: "deleting"}


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None and not self.blocked


def _record_gates(state: Any, outputs: dict[str, Any]) -> bool:
    gates = outputs.pop("gates", None)
    if isinstance(gates, dict) and gates:
        state.gates.update({k: gates[k] for k in sorted(gates)})
        return True
    return False


def _gate_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per gate verdict an action recorded: what the pipeline actually measured."""
    lines = []
    for name in sorted(after):
        rec = after[name]
        if before.get(name) == rec or not isinstance(rec, dict):
            continue
        metrics = ", ".join(f"{k}={v}" for k, v in sorted((rec.get("metrics") or {}).items()))
        verdict = "passed" if rec.get("passed") else "failed"
        version = f" for {rec.get('model')}@{rec.get('version')}" if rec.get("version") else ""
        lines.append(f"    gate {name} {verdict}{version}" + (f": {metrics}" if metrics else ""))
    return lines


def _check_gates(ctx: Any, ch: Change, state: Any) -> list[dict[str, Any]]:
    return rollout_gates(ch, policy=ctx.policy, gates_for=ctx.gates_for, state=state)


def record_intent(ctx: Any, ch: Change, state: Any) -> str:
    """Write what is about to be done to `ch`'s resource into the state before any work
    starts; return the key of the run it starts or resumes. An intent left by an interrupted
    apply for the same content keeps its key (the provider adopts that run); `--replace`
    gets a fresh one (a deliberate new run)."""
    content_hash = (ch.desired or ch.current).content_hash
    prev = state.pending.get(ch.address)
    if prev is not None and prev["content_hash"] == content_hash:
        run_key = prev["run_key"]
    elif ch.action == Action.REPLACE:
        run_key = f"{content_hash}.replace-{uuid.uuid4().hex[:12]}"
    else:
        run_key = content_hash
    state.pending[ch.address] = {"action": ch.action.value, "content_hash": content_hash, "run_key": run_key}
    ctx.store.write(state)
    pause_point("intent-recorded")
    return run_key


def _apply_one(ctx: Any, ch: Change, state: Any) -> None:

    provider = ctx.provider_for(ch.type)
    run_key = record_intent(ctx, ch, state)
    if ch.action == Action.DELETE:
        retrying(lambda: provider.delete(ch.current))
        state.resources.pop(ch.address, None)
        state.pending.pop(ch.address, None)
        return
    current = ch.current
    if ch.action == Action.REPLACE and current is not None:
        retrying(lambda: provider.delete(current))
        state.resources.pop(ch.address, None)
        ctx.store.write(state)  # the old object is gone: say so before creating the new one
        current = None
    d = dataclasses.replace(ch.desired, run_key=run_key)
    ids, outputs = retrying(lambda: provider.apply(d, current))
    pause_point("action-returned")
    outputs = dict(outputs or {})
    _record_gates(state, outputs)
    state.resources[ch.address] = ResourceState(
        address=ch.address, type=d.type, name=d.name, content_hash=d.content_hash,
        ids=dict(sorted((ids or {}).items())), outputs=dict(sorted(outputs.items())),
        attributes=d.attributes, depends_on=list(d.depends_on))
    state.pending.pop(ch.address, None)


def _settle_intents(ctx: Any, plan: Plan, state: Any) -> None:
    """Drop intents an interrupted apply left for resources that need nothing now (the state
    holds that content, or nothing declares it any more)."""
    desired = {c.address: c for c in plan.changes}
    stale = [a for a, i in state.pending.items()
             if (a in state.resources and state.resources[a].content_hash == i["content_hash"])
             or (a not in state.resources and (a not in desired or desired[a].desired is None))]
    if stale:
        for a in stale:
            del state.pending[a]
        ctx.store.write(state)


def execute(ctx: Any, plan: Plan, state: Any, *, echo: Callable[[str], None], tty: bool = False) -> ApplyResult:
    """Apply `plan` (computed against `state`, under the caller's lock) with `ctx`'s providers."""

    todo = [c for c in plan.changes if c.action in APPLY_ACTIONS]
    if any(c.type == "prompt" for c in todo):
        # The home-made prompt registry of older specops versions moves into MLflow once.
        for line in migrate_legacy_prompts(ctx.env, ctx.root, ctx.options):
            echo(f"notice: {line}")
    result = ApplyResult()
    if plan.problems and todo:
        # Refused before the first action, rather than failing half-way through.
        result.failed, result.error = "preflight", "; ".join(plan.problems)
        result.not_applied = [c.address for c in todo]
        return result
    progress = _Progress(len(todo), echo, tty)
    try:
        for i, ch in enumerate(todo, 1):
            gates = _check_gates(ctx, ch, state)
            bad = [g for g in gates if g["status"] != GateStatus.PASSED]
            if bad:
                result.blocked.append(ch.address)
                progress.line(f"[{i}/{len(todo)}] {ch.address}: blocked: " +
                              "; ".join(f"gate {g['gate']} {g['status']}" + (f" ({g['message']})" if g["message"] else "")
                                        for g in bad))
                continue
            progress.start(i, f"{VERBS[ch.action]} {ch.address}")
            t0 = time.monotonic()
            gates_before = dict(state.gates)
            try:
                _apply_one(ctx, ch, state)
            except ProviderError as e:
                # The action ended (failed): no run is in flight for it any more.
                _record_gates(state, dict(e.outputs))
                state.pending.pop(ch.address, None)
                ctx.store.write(state)
                result.failed, result.error = ch.address, str(e)
                result.not_applied = [c.address for c in todo[i - 1:]]
                progress.done(i, f"{ch.address}: failed: {e}")
                break
            except Exception as e:  # noqa: BLE001 - a provider bug is still one line, and stops the apply
                if os.environ.get("SPECOPS_DEBUG"):
                    raise
                result.failed, result.error = ch.address, f"{type(e).__name__}: {e}"
                result.not_applied = [c.address for c in todo[i - 1:]]
                progress.done(i, f"{ch.address}: failed: {result.error}")
                break
            ctx.store.write(state)  # each action is recorded the moment it lands
            result.applied.append(ch.address)
            progress.done(i, f"{ch.address}: {ch.action}d in {time.monotonic() - t0:.1f} s")
            for line in _gate_lines(gates_before, state.gates):
                progress.echo(line)
        if result.failed is None and state.pending:
            _settle_intents(ctx, plan, state)
    finally:
        progress.close()
    return result


class _Progress:
    """rich progress bar on a terminal, plain lines otherwise (CI logs, pipes)."""

    def __init__(self, total: int, echo: Callable[[str], None], tty: bool) -> None:
        self.total, self.echo = total, echo
        self._bar = None
        if tty and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("apply", total=total)

    def start(self, i: int, what: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=what)
        else:
            self.echo(f"[{i}/{self.total}] {what} ...")

    def done(self, i: int, what: str) -> None:
        if self._bar is not None:
            self._bar.console.print(what, markup=False, highlight=False)
            self._bar.update(self._task, advance=1)
        else:
            self.echo(f"[{i}/{self.total}] {what}")

    def line(self, what: str) -> None:
        if self._bar is not None:
            self._bar.console.print(what, markup=False, highlight=False)
            self._bar.update(self._task, advance=1)
        else:
            self.echo(what)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def accept_live(ctx: Any, plan: Plan, state: Any) -> list[str]:
    """`apply --refresh-only`: record what is live as the state of every drifted resource (a
    deleted object is forgotten), in one locked, backed-up write. Returns the addresses."""
    accepted = []
    for ch in plan.drifted:
        cur, live = state.resources.get(ch.address), ch.live
        if cur is None or live is None:
            continue
        if not live.exists:
            del state.resources[ch.address]
        else:
            cur.content_hash = live.content_hash or cur.content_hash
            if live.attributes:
                _, seen = align(cur.attributes, live.attributes)
                cur.attributes = {**cur.attributes, **seen}
            cur.ids = dict(sorted({**cur.ids, **(live.ids or {})}.items()))
        accepted.append(ch.address)
    if accepted:
        ctx.store.write(state)
    return accepted


def drift_refusal(plan: Plan) -> str | None:
    """Under `drift: report`, apply refuses while any resource drifted: the message, or None."""
    if plan.policy.get("drift") != "report":
        return None
    drifted = [c.address for c in plan.drifted if c.action != Action.ORPHAN]
    if not drifted:
        return None
    return (f"env '{plan.env}' drifted outside specops ({', '.join(drifted)}) and its policy is drift: report; "
            f"apply refuses until it is resolved: see `specops drift --env {plan.env}`, then revert the live "
            "change, or re-run with --overwrite-drift to make the specs win")


def summary(result: ApplyResult, plan: Plan) -> str:
    if result.failed:
        return (f"apply stopped at {result.failed}: {result.error}; applied: "
                f"{', '.join(result.applied) or 'nothing'}; not applied: {', '.join(result.not_applied)}")
    line = f"Apply complete: {len(result.applied)} applied"
    if result.blocked:
        line += f", {len(result.blocked)} blocked by gates ({', '.join(result.blocked)})"
    return line + "."


def is_tty() -> bool:
    return sys.stdout.isatty()


# ---- `specops gate run` ---------------------------------------------------------------------


def run_gate(ctx: Any, gate: str, *, metrics_file: str | None, version: str | None,
             echo: Callable[[str], None]) -> dict[str, Any]:
    """Evaluate `gate` in `ctx.env` and record the verdict in state.gates (under the lock).

    With `metrics_file` the thresholds are checked against those metrics (a JSON object
    {metric: number}, e.g. from an external eval harness); otherwise the model's pipeline runs
    on ZenML's local stack up to the gate (data checks, training, evaluation, the gate).
    Relative thresholds compare with the metrics recorded on the model version this env serves
    now (its alias in the MLflow registry); with none, the gate's `onMissingBaseline` decides.
    The version recorded is `version`, else the model version the pipeline resource last
    registered (state outputs), else none (then the result counts for any version).
    """
    import json

    view = ctx.resolved.envs[ctx.env]
    node = view.get("EvalGate", gate)
    if node is None:
        raise ProviderError(f"unknown gate '{gate}' in env '{ctx.env}'"
                            + suggestion(gate, [g.name for g in view.of_kind("EvalGate")]))
    target = gate_model(view, node)
    if target is None:
        raise ProviderError(f"gate '{gate}' names no model and its prompt's model is unknown")
    model = target.name
    with ctx.store.lock("gate run"):
        state = ctx.store.read() or State.new(ctx.env)
        served = served_baseline(ctx, target, gate)
        baseline = served.get("metrics") or None
        # A prompt gate's row outcomes: the baseline of its significance test.
        baseline_rows = served.get("rows") if isinstance(served.get("rows"), dict) else None
        if version is None:
            pipe = next((r for r in state.resources.values() if r.type.endswith("_pipeline") and r.name == model), None)
            version = pipe.outputs.get("model_version") if pipe is not None else None
        if metrics_file is not None:
            try:
                metrics = json.loads(open(metrics_file, encoding="utf-8").read())
            except (OSError, ValueError) as e:
                raise ProviderError(f"{metrics_file}: cannot read metrics JSON ({e})") from None
            if not isinstance(metrics, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
                raise ProviderError(f"{metrics_file}: expected a JSON object of metric -> number")
            rec = _check_metrics(_gate_params(node), metrics, baseline)
            source = "gate-run"
        else:
            rec = _run_to_gate(ctx, view, node, baseline, echo, baseline_rows)
            source = "gate-run:local"
        rec.update({"model": model, "version": None if version is None else str(version), "source": source})
        if served:
            rec["baseline_version"] = served["version"]
        state.gates[gate] = dict(sorted(rec.items()))
        ctx.store.write(state)
    return rec


def served_baseline(ctx: Any, model: Any, gate: str) -> dict[str, Any]:
    """What the env serves now for `model` and the metrics `gate` recorded on it ({} when
    nothing serves there yet): {"version", "metrics", "rows"?}."""
    reg = ctx.options.get("registry") or {}
    if not tracking.store_exists(reg.get("uri"), ctx.root):
        return {}
    try:
        return tracking.baseline_for(client_for(ctx.root, ctx.options), model.spec.registry.name or model.name,
                                     ctx.env, gate)
    except tracking.RegistryError as e:
        raise ProviderError(str(e)) from None


def _check_metrics(params: dict[str, Any], metrics: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:

    results = [_check(Threshold.from_params(c), metrics, baseline or {}, params["on_missing_baseline"])
               for c in params["metrics"]]
    passed = all(r["passed"] for r in results)
    return {"passed": passed, "metrics": dict(sorted(metrics.items())),
            "message": "; ".join(r["message"] for r in results if not r["passed"])}


def _run_to_gate(ctx: Any, view: Any, node: Any, baseline: dict[str, Any] | None,
                 echo: Callable[[str], None], baseline_rows: dict[str, bool] | None = None) -> dict[str, Any]:
    model = gate_model(view, node)
    measured = f"eval-{node.name}" if node.spec.prompt is not None else "evaluate"
    p = lower_pipeline(ctx.resolved, view, model)
    gate_step = f"gate-{node.name}"
    keep, todo = set(), [gate_step]
    while todo:  # the gate and everything upstream of it
        s = todo.pop()
        if s not in keep:
            keep.add(s)
            todo.extend(p.step(s).inputs.values())
    steps = []
    for s in p.steps:
        if s.name in keep:
            if s.name == gate_step and baseline:
                s = dataclasses.replace(s, params={**s.params, "baseline": baseline})
            if s.name == measured and s.params.get("task") == "prompt" and baseline_rows:
                s = dataclasses.replace(s, params={**s.params, "baseline_rows": baseline_rows})
            steps.append(s)
    local = dataclasses.replace(p.target, backend="zenml", provider="local")
    p = dataclasses.replace(p, steps=tuple(steps), target=local, schedule=None, name=f"{p.name}-gate-{node.name}")
    echo(f"running {model.name} up to {gate_step} on ZenML's local stack ({len(steps)} steps)")
    result = run_local(zenml.emit(p), workdir=ctx.root / ".specops" / "runs" / ctx.env / p.name,
                       repo_root=ctx.root, zenml_config_path=ctx.root / ".specops" / "zenml")
    ev = next((s.result for s in result.steps.values() if s.name == measured and isinstance(s.result, dict)), {})
    g = result.steps.get(gate_step)
    if g is None or g.status not in ("completed", "cached", "failed"):
        raise ProviderError(f"the run stopped before {gate_step}: {result.error}")
    passed = g.status in ("completed", "cached") and bool((g.result or {}).get("passed"))
    rec = {"passed": passed, "metrics": ev.get("metrics") or {},
           "message": "" if passed else (g.error or result.error or ""), "run_id": result.run_id}
    if isinstance(ev.get("row_outcomes"), dict):
        rec["rows"] = dict(sorted(ev["row_outcomes"].items()))
    return rec
