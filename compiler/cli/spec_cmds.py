"""Commands on the specs themselves: render, graph, schema, init (validate: validate_cmd.py)."""

from __future__ import annotations

from pathlib import Path

import click

from specops.checks import analyze
from specops.cli.common import (
    echo_json,
    env_option,
    exit_on_errors,
    json_option,
    out_format,
    require_envs,
)
from specops.cli.scaffold import scaffold
from specops.frontend.schema import combined_schema, schema_files
from specops.resolve.graph import graph_document, render_graph
from specops.resolve.render import render_env, render_env_documents


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
