"""Commands on the specs themselves: validate, render, graph, schema, init."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from specops.checks import analyze
from specops.cli.common import (
    DIAG_FORMATS,
    diagnostics_json,
    echo_json,
    emit_diagnostics,
    env_option,
    exit_on_errors,
    json_option,
    out_format,
    require_envs,
    verbose_option,
)
from specops.cli.scaffold import scaffold
from specops.frontend.loader import load
from specops.frontend.schema import combined_schema, schema_files
from specops.resolve.graph import graph_document, render_graph
from specops.resolve.render import render_env, render_env_documents


@click.command()
@click.argument("path", default=".", type=click.Path())
@json_option(DIAG_FORMATS)
@env_option(multiple=True, help="Check only these environments (repeatable; default: all).")
@verbose_option
def validate(path: str, fmt: str, as_json: bool, envs: tuple[str, ...]) -> None:
    """Check every spec under PATH; report all problems at file:line:col."""
    fmt = out_format(fmt, as_json)
    repo = load(path)
    project = repo.project()
    if envs and project is not None:
        require_envs(envs, project.model.spec.environments)
    resolved = analyze(repo, list(envs) or None)
    diags = resolved.diagnostics
    if fmt == "json":
        echo_json({"version": 1, "valid": not diags.has_errors, "specs": len(resolved.repo.specs),
                   "environments": sorted(resolved.envs), "diagnostics": diagnostics_json(diags)})
    else:
        emit_diagnostics(diags, resolved.repo.root, fmt)
    if diags.has_errors:
        sys.exit(1)
    if fmt == "text":
        n, e = len(resolved.repo.specs), len(resolved.envs)
        click.echo(f"{n} spec{'s' if n != 1 else ''} valid in {e} environment{'s' if e != 1 else ''}", err=True)


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option(help="Environment to render.")
@json_option(("yaml",))
def render(path: str, env: str, fmt: str, as_json: bool) -> None:
    """Print the effective specs of one environment (overrides applied), deterministically."""
    fmt = out_format(fmt, as_json)
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt)
    require_envs([env], resolved.envs)
    if fmt == "json":
        echo_json({"version": 1, "env": env, "documents": render_env_documents(resolved, env)})
    else:
        click.echo(render_env(resolved, env), nl=False)


@click.command()
@click.option("--out", "out", type=click.Path(), default=None,
              help="Write one schema per kind plus specops.schema.json into this directory.")
def schema(out: str | None) -> None:
    """JSON Schema for every kind (and a combined one for yaml-language-server)."""
    if out is None:
        click.echo(combined_schema(), nl=False)
        return
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in schema_files().items():
        (d / name).write_bytes(data)
        click.echo(f"wrote {d / name}", err=True)


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option(required=False, help="Environment (default: the first declared).")
@json_option(("mermaid", "dot"))
def graph(path: str, env: str | None, fmt: str, as_json: bool) -> None:
    """The lineage graph: dataset -> model -> gate -> serving."""
    fmt = out_format(fmt, as_json)
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt)
    env = env or sorted(resolved.envs)[0]
    require_envs([env], resolved.envs)
    if fmt == "json":
        echo_json(graph_document(resolved.envs[env]))
    else:
        click.echo(render_graph(resolved.envs[env], fmt), nl=False)


@click.command()
@click.argument("directory", type=click.Path())
def init(directory: str) -> None:
    """Scaffold a minimal spec repo in DIRECTORY that validates."""
    for p in scaffold(Path(directory)):
        click.echo(f"created {p}", err=True)
