"""`specops capacity` and `specops run`."""

from __future__ import annotations

import sys

import click

from specops.checks import analyze
from specops.checks.capacity import capacity_report, render_table
from specops.cli.common import (
    diagnostics_json,
    echo_json,
    emit_diagnostics,
    env_option,
    exit_on_errors,
    json_option,
    out_format,
    require_envs,
)
from specops.diagnostics import Diagnostic, suggestion
from specops.ir.lower import lower_env
from specops.ops.runner import run_pipeline


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option(multiple=True)
@json_option(("table",))
def capacity(path: str, envs: tuple[str, ...], fmt: str, as_json: bool) -> None:
    """GPU capacity of every serving target: weights, KV cache, concurrency, cost."""
    fmt = out_format(fmt, as_json)
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt)
    require_envs(envs, resolved.envs)
    reports, problems = [], []
    for env in sorted(envs or resolved.envs):
        for s in lower_env(resolved, env)[1]:
            if not s.model_config:
                continue
            r = capacity_report(resolved.repo.root, s)
            (problems if isinstance(r, Diagnostic) else reports).append(r)
    diags = problems + [d for r in reports if (d := r.to_diagnostic()) is not None]
    if fmt == "json":
        echo_json({"version": 1, "reports": [r.to_dict() for r in reports], "diagnostics": diagnostics_json(diags)})
    else:
        click.echo(render_table(reports), nl=False)
        emit_diagnostics(diags, resolved.repo.root, "text")
    if problems or any(r.verdict == "does-not-fit" for r in reports):
        sys.exit(1)


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option(help="Environment whose pipelines run.")
@click.option("--model", "models", multiple=True, help="Only these models' pipelines (default: all).")
def run(path: str, env: str, models: tuple[str, ...]) -> None:
    """Compile and run lifecycle pipelines on a local target (ZenML's local stack).

    Every step runs for real: data checks, training, evaluation, the gates (which stop the
    run when a threshold fails) and registration into the local registry.
    """
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, "text")
    require_envs([env], resolved.envs)
    view = resolved.envs[env]
    if view.target.provider != "local":
        raise click.UsageError(f"environment '{env}' runs on target '{view.target_name}' ({view.target.backend}, "
                               f"{view.target.provider}); `specops run` runs local targets — use `specops compile` "
                               "and your orchestrator for remote ones")
    pipelines = lower_env(resolved, env)[0]
    known = [p.model for p in pipelines]
    for m in models:
        if m not in known:
            raise click.UsageError(f"unknown model '{m}' in environment '{env}'" + suggestion(m, known))
    failed = False
    for p in pipelines:
        if models and p.model not in models:
            continue
        ok = run_pipeline(resolved, p, echo=lambda line: click.echo(line, err=True))
        failed = failed or not ok
    if failed:
        sys.exit(1)
