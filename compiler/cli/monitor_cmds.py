"""`specops monitor run|schedule`: run a Monitor now; print the host-scheduler line for it."""

from __future__ import annotations

import shlex
import sys

import click

from specops.checks import analyze
from specops.cli.common import echo_json, env_option, exit_on_errors, fail, json_option, out_format, require_envs
from specops.ir.monitors import host_schedule_line
from specops.ops.monitor import MonitorError, run_monitor
from specops.state import StateError

BREACH_EXIT = 2


@click.group()
def monitor() -> None:
    """Monitors: data drift, model and LLM quality, serving SLOs."""


@monitor.command(name="run")
@click.argument("name", metavar="NAME")
@click.argument("path", default=".", type=click.Path())
@env_option()
@click.option("--data", "data", type=click.Path(dir_okay=False, exists=True),
              help="Read this file as the current window instead of the inputs Dataset's source.")
@click.option("--no-act", is_flag=True, help="Report a breach, but record, notify and retrain nothing.")
@json_option()
def monitor_run(name: str, path: str, env: str, data: str | None, no_act: bool, fmt: str, as_json: bool) -> None:
    """Run monitor NAME in --env now (exit 2 on a breach, 1 on an error).

    A breach is recorded in state; onBreach.retrain starts the retrain run (on a local target,
    here on ZenML's local stack; on SageMaker, as a pipeline execution) and onBreach.notify
    sends the `breach` event.
    """
    fmt = out_format(fmt, as_json)
    echo = (lambda line: click.echo(line, err=True)) if fmt == "json" else click.echo
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt)
    require_envs([env], resolved.envs)
    try:
        o = run_monitor(resolved, env, name, data=data, echo=echo, act=not no_act)
    except (MonitorError, StateError) as e:
        fail(str(e))
    report_dir = o.report_dir.relative_to(resolved.repo.root).as_posix()
    if fmt == "json":
        echo_json({"version": 1, "monitor": name, "env": env, "breached": o.breached, "checks": o.report["checks"],
                   "window": o.report.get("window", {}), "report": report_dir, "retrain": o.retrain,
                   "notified": [{"notifier": d.notifier, "ok": d.ok, "error": d.error} for d in o.deliveries]})
    else:
        for c in o.report["checks"]:
            mark = "drifted" if c.get("drifted") else ("ok" if c["passed"] else "BREACH")
            click.echo(f"  {c['name']:<28} {mark:<8} {c['message']}")
        click.echo(f"monitor {name} ({env}): {'BREACH' if o.breached else 'ok'}; report in {report_dir}/")
        if o.retrain is not None:
            r = o.retrain
            reg = r.get("registered") or {}
            gates = ", ".join(f"{g} {s}" for g, s in r.get("gates", {}).items())
            click.echo(f"retrain run {r['run'][:12]} ({r['pipeline']}): {r['status']}"
                       + (f"; gates: {gates}" if gates else "")
                       + (f"; registered {reg['registry']}@{reg['version']} (no alias moved)" if reg else "")
                       + (f"; {r['message']}" if r.get("message") else ""))
    for d in o.deliveries:  # a notifier that failed never fails the run: one line for the log
        click.echo(f"notified {d.notifier}" if d.ok else f"warning: {d.error}", err=not d.ok)
    if o.breached:
        sys.exit(BREACH_EXIT)


@monitor.command(name="schedule")
@click.argument("name", metavar="NAME")
@click.argument("path", default=".", type=click.Path())
@env_option()
def monitor_schedule(name: str, path: str, env: str) -> None:
    """Print the crontab line that runs monitor NAME on its schedule (for a local target, whose
    orchestrator cannot schedule)."""
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, "text")
    require_envs([env], resolved.envs)
    node = resolved.envs[env].get("Monitor", name)
    if node is None:
        fail(f"unknown monitor {name!r} in environment {env!r}")
    if node.spec.schedule is None:
        fail(f"monitor {name!r} has no schedule")
    click.echo(host_schedule_line(node.spec.schedule.cron, name, env, shlex.quote(str(resolved.repo.root))))
