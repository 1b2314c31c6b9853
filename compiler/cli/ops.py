"""Commands on the live system: plan, apply, drift, force-unlock, gate run, import.

Imports only click at module level (the CLI's start-up budget); each command imports the
engine when it runs. Every failure is one line on stderr and exit 1 (never a traceback):
a locked or corrupt state, a refresh or provider error, a drift refusal, a missing
confirmation. `plan --detailed-exitcode` and `drift` exit 2 when there is something to show.
"""

from __future__ import annotations

import sys

import click


def _fail(msg: str) -> None:
    click.echo(f"specops: error: {msg}", err=True)
    sys.exit(1)


def _context(path: str, env: str, options: dict | None = None):
    from specops.cli.app import (
        _check_envs,
        _emit_diagnostics,
        _fail_on_errors,
        _load_resolved,
    )
    from specops.ops.plan import load_env

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    _check_envs(resolved, (env,))
    ctx = load_env(resolved, env, options)
    if ctx.diagnostics.has_errors:
        _emit_diagnostics(ctx.diagnostics, resolved.repo.root, "text")
        sys.exit(1)
    return ctx


def _one_line_errors():
    """The engine's own error types: printed as one line, exit 1."""
    from specops.backends.provider import ProviderError
    from specops.ops.plan import PlanError
    from specops.state import StateError

    return (StateError, PlanError, ProviderError)


def register(main: click.Group) -> None:
    env_opt = click.option("--env", "env", required=True, help="Environment.")
    target_opt = click.option("--target", "targets", multiple=True, metavar="ADDRESS",
                              help="Only this resource and what it depends on (repeatable).")
    refresh_opt = click.option("--refresh", "refresh", type=click.BOOL, default=True, show_default=True,
                               help="Read the live system first (--refresh=false plans against state only).")

    @main.command()
    @click.argument("path", default=".", type=click.Path())
    @env_opt
    @refresh_opt
    @target_opt
    @click.option("--detailed-exitcode", is_flag=True, help="Exit 0: no changes, 2: changes, 1: error.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable plan (schema version 1).")
    def plan(path: str, env: str, refresh: bool, targets: tuple[str, ...], detailed_exitcode: bool,
             as_json: bool) -> None:
        """Show what apply would change: desired specs vs recorded state vs the live system."""
        from specops.ops.plan import render_text

        try:
            ctx = _context(path, env)
            p = ctx.plan(ctx.store.read(), refresh_live=refresh, targets=list(targets) or None)
        except _one_line_errors() as e:
            _fail(str(e))
        click.echo(p.to_json() if as_json else render_text(p), nl=False)
        if detailed_exitcode and p.has_changes:
            sys.exit(2)

    @main.command()
    @click.argument("path", default=".", type=click.Path())
    @env_opt
    @refresh_opt
    @target_opt
    @click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
    @click.option("--overwrite-drift", is_flag=True,
                  help="Under policy drift: report, overwrite live changes this once (the specs win).")
    def apply(path: str, env: str, refresh: bool, targets: tuple[str, ...], auto_approve: bool,
              overwrite_drift: bool) -> None:
        """Apply the plan in dependency order, recording each action in state as it lands."""
        from specops.ops.apply import (
            APPLY_ACTIONS,
            drift_refusal,
            execute,
            is_tty,
            summary,
        )
        from specops.ops.plan import render_text
        from specops.state import State

        try:
            ctx = _context(path, env)
            if overwrite_drift:
                ctx.policy = ctx.policy.model_copy(update={"drift": "reconcile"})
            with ctx.store.lock("apply"):
                dead = getattr(ctx.store, "took_over", None)
                if dead is not None:
                    click.echo(f"released the lock of pid {dead.pid} ({dead.operation} since {dead.created}): "
                               "that process is no longer running on this host", err=True)
                state = ctx.store.read() or State.new(env)
                p = ctx.plan(state, refresh_live=refresh, targets=list(targets) or None)
                click.echo(render_text(p), nl=False)
                refusal = drift_refusal(p)
                if refusal:
                    _fail(refusal)
                if not any(c.action in APPLY_ACTIONS for c in p.changes):
                    return
                if not auto_approve:
                    if not sys.stdin.isatty():
                        _fail("refusing to apply without confirmation: stdin is not a terminal; "
                              "re-run with --auto-approve")
                    if not click.confirm(f"Apply these changes to env '{env}'?", default=False):
                        _fail("apply cancelled; nothing was changed")
                result = execute(ctx, p, state, echo=click.echo, tty=is_tty())
        except _one_line_errors() as e:
            _fail(str(e))
        line = summary(result, p)
        if not result.ok:
            _fail(line)
        click.echo(line)

    @main.command()
    @click.argument("path", default=".", type=click.Path())
    @env_opt
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable (the plan schema, drifted only).")
    def drift(path: str, env: str, as_json: bool) -> None:
        """Show live changes made outside specops. Exit 2 if any, 0 if none."""
        import json

        from specops.ops.plan import SYMBOLS, _val

        try:
            ctx = _context(path, env)
            state = ctx.store.read()
            p = ctx.plan(state) if state is not None else None
        except _one_line_errors() as e:
            _fail(str(e))
        drifted = p.drifted if p is not None else []
        if as_json:
            doc = p.to_dict() if p is not None else {"version": 1, "env": env, "resources": []}
            doc["resources"] = [c.to_dict() for c in drifted]
            click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
        elif state is None:
            click.echo(f"env {env}: no state yet (nothing applied), so nothing can drift")
        elif not drifted:
            click.echo(f"env {env}: no drift; the live system matches the state (serial {state.serial})")
        else:
            click.echo(f"env {env}: {len(drifted)} resource(s) changed outside specops "
                       f"(policy drift: {p.policy['drift']})")
            for c in drifted:
                click.echo(f"  {SYMBOLS['drift']:>3} {c.address}")
                for x in c.drift_diffs:
                    click.echo(f"        ~ {x.path}: {_val(x.before)} -> {_val(x.after)}")
        if drifted:
            sys.exit(2)

    @main.command(name="force-unlock")
    @click.argument("lock_id")
    @click.argument("path", default=".", type=click.Path())
    @env_opt
    def force_unlock(lock_id: str, path: str, env: str) -> None:
        """Release a lock left behind by a crashed apply (the id is in the refusal message)."""
        from specops.cli.app import _check_envs, _fail_on_errors, _load_resolved
        from specops.state import StateError, open_store

        resolved = _load_resolved(path)
        _fail_on_errors(resolved, "text")
        _check_envs(resolved, (env,))
        try:
            open_store(resolved.project.state, env, resolved.repo.root).force_unlock(lock_id)
        except StateError as e:
            _fail(str(e))
        click.echo(f"released lock {lock_id} on env '{env}'")

    @main.group()
    def gate() -> None:
        """Eval gates: record results that promotion checks."""

    @gate.command(name="run")
    @click.argument("gate_name", metavar="GATE")
    @click.argument("path", default=".", type=click.Path())
    @env_opt
    @click.option("--metrics", "metrics_file", type=click.Path(dir_okay=False),
                  help="Record an externally computed metrics JSON ({metric: value}) instead of running.")
    @click.option("--version", "version", default=None, help="Model version the result is for.")
    def gate_run(gate_name: str, path: str, env: str, metrics_file: str | None, version: str | None) -> None:
        """Evaluate GATE for its model in --env and record the verdict in state.

        Without --metrics, runs the model's pipeline up to the gate on ZenML's local stack.
        """
        from specops.ops.apply import run_gate

        try:
            ctx = _context(path, env)
            rec = run_gate(ctx, gate_name, metrics_file=metrics_file, version=version, echo=click.echo)
        except _one_line_errors() as e:
            _fail(str(e))
        metrics = ", ".join(f"{k}={v}" for k, v in sorted(rec["metrics"].items()))
        click.echo(f"gate {gate_name}: {'passed' if rec['passed'] else 'failed'}"
                   f"{f' ({metrics})' if metrics else ''}{'' if rec['passed'] else ': ' + rec['message']}")
        if not rec["passed"]:
            sys.exit(1)

    @main.command(name="import")
    @click.argument("address")
    @click.argument("resource_id", metavar="ID")
    @click.argument("path", default=".", type=click.Path())
    @env_opt
    def import_cmd(address: str, resource_id: str, path: str, env: str) -> None:
        """Adopt an existing live object (ID: ARN, KFP pipeline id, path) into state as ADDRESS."""
        import importlib

        try:
            importer = importlib.import_module("specops.ops.importer")
        except ModuleNotFoundError as e:
            if e.name != "specops.ops.importer":
                raise
            _fail("import is not available in this build (specops.ops.importer is missing)")
        try:
            ctx = _context(path, env)
            rec = importer.import_resource(ctx.store, address, resource_id, env=env, target=ctx.target,
                                           root=ctx.root, options=ctx.options)
        except _one_line_errors() as e:
            _fail(str(e))
        ids = ", ".join(f"{k}={v}" for k, v in sorted(getattr(rec, "ids", {}).items()))
        click.echo(f"imported {address} into env '{env}'" + (f" ({ids})" if ids else ""))
