"""Commands on the live system: plan, apply, drift, import, force-unlock.

Every failure is one line on stderr and exit 1 (never a traceback): a locked or corrupt state,
a refresh or provider error, a drift refusal, a stale saved plan, a missing confirmation.
`plan --detailed-exitcode` and `drift` exit 2 when there is something to show.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from specops.backends.provider import ProviderError
from specops.checks import analyze
from specops.cli.common import (
    echo_json,
    emit_diagnostics,
    env_option,
    exit_on_errors,
    fail,
    json_option,
    no_color_option,
    out_format,
    require_envs,
    use_color,
    verbose_option,
)
from specops.cli.views import render_drift, render_plan
from specops.fsio import write_atomic
from specops.ops import audit, savedplan
from specops.ops.apply import accept_live, drift_refusal, execute, is_tty, summary
from specops.ops.importer import import_resource
from specops.ops.notify import apply_event, drift_event, send
from specops.ops.plan import APPLY_ACTIONS, EnvContext, Plan, PlanError, load_env, policy_violations
from specops.state import State, StateError, open_store

ONE_LINE_ERRORS = (StateError, PlanError, ProviderError)


def context(path: str, env: str, fmt: str = "text") -> EnvContext:
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt)
    require_envs([env], resolved.envs)
    ctx = load_env(resolved, env)
    exit_on_errors(ctx.diagnostics, resolved.repo.root, fmt)
    return ctx


def parse_duration(text: str) -> float:
    """'30s', '2m', '1h' or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text or "")
    if not m:
        raise click.BadParameter(f"'{text}' is not a duration (e.g. 30s, 2m, 1h)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _lock_timeout(fn: Callable) -> Callable:
    return click.option("--lock-timeout", "lock_timeout", default="0s", show_default=True, metavar="DURATION",
                        help="Wait this long for another run's state lock (e.g. 30s, 5m).")(fn)


def _notify_option(fn: Callable) -> Callable:
    return click.option("--notify/--no-notify", "notify", default=True, show_default=True,
                        help="Send the event to the Project's notifiers (spec.notifications).")(fn)


def _notify(ctx: EnvContext, event: Any) -> None:
    """Deliver to the declared notifiers; a failed delivery is a warning, never a failed command."""
    for d in send(ctx.resolved.project, event):
        if not d.ok:
            click.echo(f"specops: warning: {d.error}; not notified", err=True)


def _plan_options(fn: Callable) -> Callable:
    fn = click.option("--refresh", "refresh", type=click.BOOL, default=True, show_default=True,
                      help="Read the live system first (--refresh=false plans against state only).")(fn)
    fn = click.option("--target", "targets", multiple=True, metavar="ADDRESS",
                      help="Only this resource and what it depends on (repeatable).")(fn)
    fn = click.option("--replace", "replace", multiple=True, metavar="ADDRESS",
                      help="Re-create this resource even if nothing changed, and never adopt an existing "
                           "run for the same content (repeatable).")(fn)
    return click.option("--refresh-only", "refresh_only", is_flag=True,
                        help="Only accept what is live into state; change nothing live.")(fn)


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option()
@_plan_options
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0: no changes, 2: changes, 1: error.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Save the plan to FILE for `specops apply FILE` (applied exactly as shown).")
@json_option()
@no_color_option
@verbose_option
def plan(path: str, env: str, refresh: bool, targets: tuple[str, ...], replace: tuple[str, ...],
         refresh_only: bool, detailed_exitcode: bool, out: str | None, fmt: str, as_json: bool,
         no_color: bool) -> None:
    """Show what apply would change: desired specs vs recorded state vs the live system."""
    fmt = out_format(fmt, as_json)
    try:
        ctx = context(path, env, fmt)
        state = ctx.store.read()
        p = ctx.plan(state, refresh_live=refresh, targets=list(targets) or None, replace=list(replace),
                     refresh_only=refresh_only)
        violations = policy_violations(ctx, p)
        if out and not violations.has_errors:  # a plan that breaks a rule is never saved
            write_atomic(Path(out), savedplan.dumps(p, state=state, manifest_sha256=ctx.manifest_sha256,
                                                    replace=list(replace)))
    except ONE_LINE_ERRORS as e:
        fail(str(e))
    if fmt != "json" or not violations.has_errors:
        click.echo(p.to_json() if fmt == "json" else render_plan(p, color=use_color(no_color)), nl=False)
    # Rules that read the plan: shown after it; an error exits 1 (with --json, in the document).
    exit_on_errors(violations, ctx.root, fmt, doc=p.to_dict())
    emit_diagnostics(violations, ctx.root, fmt)
    if out and fmt != "json":
        click.echo(f"Saved the plan to {out}: `specops apply {out}` applies exactly this.")
    if detailed_exitcode and p.has_changes:
        sys.exit(2)


@click.command()
@click.argument("target", default=".", metavar="[PATH | PLANFILE]", type=click.Path())
@env_option(required=False)
@_plan_options
@_lock_timeout
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--overwrite-drift", is_flag=True,
              help="Under policy drift: report, overwrite live changes this once (the specs win).")
@click.option("--dir", "repo_dir", default=".", type=click.Path(), show_default=True,
              help="The spec repo, when applying a saved plan.")
@_notify_option
@json_option()
@no_color_option
def apply(target: str, env: str | None, refresh: bool, targets: tuple[str, ...], replace: tuple[str, ...],
          refresh_only: bool, lock_timeout: str, auto_approve: bool, overwrite_drift: bool, repo_dir: str,
          notify: bool, fmt: str, as_json: bool, no_color: bool) -> None:
    """Apply the plan in dependency order, recording each action in state as it lands.

    With a saved plan (`specops plan --out FILE`), applies exactly what it shows, or refuses
    if the state or the compiled inputs changed since it was made.
    """
    fmt = out_format(fmt, as_json)
    color = use_color(no_color)
    echo = (lambda line: click.echo(line, err=True)) if fmt == "json" else click.echo
    # A file that is not YAML is a saved plan; a folder (or a spec file) is the repo.
    saved = savedplan.load(target) if Path(target).is_file() and not target.endswith((".yaml", ".yml")) else None
    try:
        if saved is not None:
            env = env or saved["env"]
            path = repo_dir
        else:
            path = target
        if not env:
            raise click.UsageError("missing option '--env' (or set SPECOPS_ENV)")
        ctx = context(path, env, fmt)
        if overwrite_drift:
            ctx.policy = ctx.policy.model_copy(update={"drift": "reconcile"})
        with ctx.store.lock("apply", timeout=parse_duration(lock_timeout)):
            dead = getattr(ctx.store, "took_over", None)
            if dead is not None:
                click.echo(f"released the lock of pid {dead.pid} ({dead.operation} since {dead.created}): "
                           "that process is no longer running on this host", err=True)
            current = ctx.store.read()
            state = current or State.new(env)
            if saved is not None:
                savedplan.check(saved, env=env, state=current, manifest_sha256=ctx.manifest_sha256, path=target)
                ctx.options["replace"] = list(saved.get("replace", []))
                p = savedplan.to_plan(saved, desired={d.address: d for d in ctx.desired}, state=current)
            else:
                p = ctx.plan(state, refresh_live=refresh, targets=list(targets) or None, replace=list(replace),
                             refresh_only=refresh_only)
            if fmt != "json":
                click.echo(render_plan(p, color=color), nl=False)
            if p.mode == "refresh-only":
                _refresh_only(ctx, p, state, fmt, auto_approve)
                return
            violations = policy_violations(ctx, p)
            emit_diagnostics(violations, ctx.root, "text")  # on stderr, also under --json
            refusal = drift_refusal(p) or (
                f"apply refused: the plan breaks {sum(d.severity == 'error' for d in violations.items)} policy "
                "rule(s), shown above; nothing was changed" if violations.has_errors else None)
            if refusal:
                _audit(ctx, p, saved is not None, outcome="refused", error=refusal)
                fail(refusal)
            if not any(c.action in APPLY_ACTIONS for c in p.changes):
                _audit(ctx, p, saved is not None, outcome="no-changes")
                if fmt == "json":
                    echo_json(_apply_doc(p, None))
                return
            if not auto_approve and saved is None:
                _confirm(f"Apply these changes to env '{env}'?")
            result = execute(ctx, p, state, echo=echo, tty=is_tty() and fmt != "json")
            _audit(ctx, p, saved is not None, result=result, state_serial=state.serial)
    except ONE_LINE_ERRORS as e:
        fail(str(e))
    line = summary(result, p)
    if notify:
        _notify(ctx, apply_event(ctx.resolved.project_name, p, result, source="apply"))
    if fmt == "json":
        echo_json(_apply_doc(p, result))
    if not result.ok:
        fail(line)
    if fmt != "json":
        click.echo(line)


def _audit(ctx: EnvContext, p: Plan, saved: bool, **kw: Any) -> None:
    """Append this apply to the environment's history (under the lock apply holds); a history
    that cannot be written is a warning: the apply itself has already happened."""
    problem = audit.record(ctx.store, audit.entry(ctx.root, p, saved_plan=saved, **kw))
    if problem:
        click.echo(f"specops: warning: {problem}", err=True)


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        fail("refusing to apply without confirmation: stdin is not a terminal; re-run with --auto-approve")
    if not click.confirm(question, default=False):
        fail("apply cancelled; nothing was changed")


def _refresh_only(ctx: EnvContext, p: Plan, state: State, fmt: str, auto_approve: bool) -> None:
    if p.drifted and not auto_approve:
        _confirm(f"Accept the live values of {len(p.drifted)} resource(s) into the state of env '{ctx.env}'?")
    accepted = accept_live(ctx, p, state)
    if fmt == "json":
        echo_json({"version": 1, "env": ctx.env, "mode": "refresh-only", "ok": True, "accepted": accepted,
                   "applied": [], "blocked": [], "not_applied": [], "failed": None, "error": None})
    else:
        click.echo(f"Refresh complete: {len(accepted)} resource(s) accepted into state.")


def _apply_doc(p: Plan, result: Any) -> dict[str, Any]:
    return {"version": 1, "env": p.env, "mode": p.mode, "ok": result is None or result.ok,
            "applied": list(result.applied) if result else [], "blocked": list(result.blocked) if result else [],
            "not_applied": list(result.not_applied) if result else [],
            "failed": result.failed if result else None, "error": result.error if result else None,
            "accepted": [], "plan": p.to_dict()}


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option()
@_notify_option
@json_option()
@no_color_option
def drift(path: str, env: str, notify: bool, fmt: str, as_json: bool, no_color: bool) -> None:
    """Show live changes made outside specops. Exit 2 if any, 0 if none."""
    fmt = out_format(fmt, as_json)
    try:
        ctx = context(path, env, fmt)
        state = ctx.store.read()
        p = ctx.plan(state) if state is not None else None
    except ONE_LINE_ERRORS as e:
        fail(str(e))
    drifted = p.drifted if p is not None else []
    if drifted and notify:
        _notify(ctx, drift_event(ctx.resolved.project_name, p, source="drift", healed=False))
    if fmt == "json":
        doc = p.to_dict() if p is not None else Plan(env, ctx.target_name, False, None, {}, []).to_dict()
        doc["resources"] = [c.to_dict() for c in drifted]
        echo_json(doc)
    else:
        click.echo(render_drift(p, env, state.serial if state else None, color=use_color(no_color)), nl=False)
    if drifted:
        sys.exit(2)


@click.command(name="force-unlock")
@click.argument("lock_id")
@click.argument("path", default=".", type=click.Path())
@env_option()
def force_unlock(lock_id: str, path: str, env: str) -> None:
    """Release a lock left behind by a crashed apply (the id is in the refusal message)."""
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, "text")
    require_envs([env], resolved.envs)
    try:
        open_store(resolved.project.state, env, resolved.repo.root).force_unlock(lock_id)
    except StateError as e:
        fail(str(e))
    click.echo(f"released lock {lock_id} on env '{env}'")


@click.command(name="import")
@click.argument("address")
@click.argument("resource_id", metavar="ID")
@click.argument("path", default=".", type=click.Path())
@env_option()
@json_option()
def import_cmd(address: str, resource_id: str, path: str, env: str, fmt: str, as_json: bool) -> None:
    """Adopt an existing live object (ID: ARN, KFP pipeline id, path) into state as ADDRESS."""
    fmt = out_format(fmt, as_json)
    try:
        ctx = context(path, env, fmt)
        rec = import_resource(ctx.store, address, resource_id, env=env, target=ctx.target, root=ctx.root,
                              options=ctx.options)
    except ONE_LINE_ERRORS as e:
        fail(str(e))
    ids = dict(sorted(getattr(rec, "ids", {}).items()))
    if fmt == "json":
        echo_json({"version": 1, "env": env, "address": address, "ids": ids})
    else:
        shown = ", ".join(f"{k}={v}" for k, v in ids.items())
        click.echo(f"imported {address} into env '{env}'" + (f" ({shown})" if shown else ""))


__all__ = ["apply", "drift", "emit_diagnostics", "force_unlock", "import_cmd", "plan"]
