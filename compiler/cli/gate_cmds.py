"""`specops gate run`: evaluate one eval gate and record its verdict in state."""

from __future__ import annotations

import sys

import click

from specops.cli.common import echo_json, env_option, fail, json_option, out_format
from specops.cli.ops_cmds import ONE_LINE_ERRORS, context
from specops.ops.apply import run_gate


@click.group()
def gate() -> None:
    """Eval gates: record results that promotion checks."""


@gate.command(name="run")
@click.argument("gate_name", metavar="GATE")
@click.argument("path", default=".", type=click.Path())
@env_option()
@click.option("--metrics", "metrics_file", type=click.Path(dir_okay=False),
              help="Record an externally computed metrics JSON ({metric: value}) instead of running.")
@click.option("--version", "version", default=None, help="Model version the result is for.")
@json_option()
def gate_run(gate_name: str, path: str, env: str, metrics_file: str | None, version: str | None, fmt: str,
             as_json: bool) -> None:
    """Evaluate GATE for its model in --env and record the verdict in state (exit 1 if it fails).

    Without --metrics, runs the model's pipeline up to the gate on ZenML's local stack.
    """
    fmt = out_format(fmt, as_json)
    echo = (lambda line: click.echo(line, err=True)) if fmt == "json" else click.echo
    try:
        ctx = context(path, env, fmt)
        rec = run_gate(ctx, gate_name, metrics_file=metrics_file, version=version, echo=echo)
    except ONE_LINE_ERRORS as e:
        fail(str(e))
    if fmt == "json":
        echo_json({"version": 1, "env": env, "gate": gate_name, "passed": bool(rec["passed"]),
                   "metrics": dict(sorted(rec["metrics"].items())), "message": rec.get("message", ""),
                   "model": rec.get("model"), "model_version": rec.get("version")})
    else:
        metrics = ", ".join(f"{k}={v}" for k, v in sorted(rec["metrics"].items()))
        click.echo(f"gate {gate_name}: {'passed' if rec['passed'] else 'failed'}"
                   f"{f' ({metrics})' if metrics else ''}{'' if rec['passed'] else ': ' + rec['message']}")
    if not rec["passed"]:
        sys.exit(1)
