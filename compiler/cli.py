"""The `specops` command line.

Start-up must stay fast (`specops --help` well under 0.3 s): this module imports only click;
every command imports what it needs when it runs. Bad input never shows a traceback: spec
problems are diagnostics (exit 1), and anything unexpected is reported as one `internal`
line unless SPECOPS_DEBUG is set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

FORMATS = ("text", "json", "github")


def _emit_diagnostics(diags, root, fmt: str, stream=None) -> None:
    from . import diagnostics as D

    items = diags.sorted() if hasattr(diags, "sorted") else list(diags)
    stream = stream or sys.stderr
    if fmt == "json":
        click.echo(D.render_json(items), nl=False)
        return
    if fmt == "github":
        click.echo(D.render_github(items), nl=False)
    else:
        text = D.render_text(items, root)
        if text:
            click.echo(text, nl=False, file=stream)
    if items:
        click.echo(D.summary(items), file=stream)


def _load_resolved(path: str, fmt: str = "text"):
    from .loader import load
    from .resolve import resolve

    repo = load(path)
    resolved = resolve(repo)
    return resolved


def _fail_on_errors(resolved, fmt: str) -> None:
    diags = resolved.diagnostics
    if diags.has_errors:
        _emit_diagnostics(diags, resolved.repo.root, fmt)
        sys.exit(1)


class _Group(click.Group):
    def invoke(self, ctx):  # one place that turns crashes into one line, never a traceback
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001
            from .diagnostics import SpecError

            if isinstance(e, SpecError):
                _emit_diagnostics(e.diagnostics, None, "text")
                sys.exit(1)
            if os.environ.get("SPECOPS_DEBUG"):
                raise
            click.echo(f"specops: error: {type(e).__name__}: {e} [internal] "
                       "(set SPECOPS_DEBUG=1 for the traceback)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specops", message="specops %(version)s")
def main() -> None:
    """specops — a GitOps compiler for ML and LLM lifecycle specs.

    Validate a repo of YAML specs, render each environment, compile pipelines for KFP,
    SageMaker and ZenML plus vLLM serving configs.
    """


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def validate(path: str, fmt: str) -> None:
    """Check every spec under PATH; report all problems at file:line:col."""
    resolved = _load_resolved(path, fmt)
    diags = resolved.diagnostics
    _emit_diagnostics(diags, resolved.repo.root, fmt)
    if diags.has_errors:
        sys.exit(1)
    if fmt == "text":
        n = len(resolved.repo.specs)
        click.echo(f"{n} spec{'s' if n != 1 else ''} valid in {len(resolved.envs)} environment"
                   f"{'s' if len(resolved.envs) != 1 else ''}", err=True)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--env", "env", required=True, help="Environment to render.")
def render(path: str, env: str) -> None:
    """Print the effective specs of one environment (overrides applied), deterministically."""
    from .render import render_env

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    if env not in resolved.envs:
        from .diagnostics import suggestion

        raise click.UsageError(f"unknown environment '{env}'" + suggestion(env, resolved.envs))
    click.echo(render_env(resolved, env), nl=False)


@main.command()
@click.option("--out", "out", type=click.Path(), default=None,
              help="Write one schema per kind plus specops.schema.json into this directory.")
def schema(out: str | None) -> None:
    """JSON Schema for every kind (and a combined one for yaml-language-server)."""
    from .schema import combined_schema, schema_files

    if out is None:
        click.echo(combined_schema(), nl=False)
        return
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in schema_files().items():
        (d / name).write_bytes(data)
        click.echo(f"wrote {d / name}", err=True)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--env", "env", default=None, help="Environment (default: the first declared).")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
def graph(path: str, env: str | None, fmt: str) -> None:
    """The lineage graph: dataset -> model -> gate -> serving."""
    from .graph import render_graph

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    env = env or sorted(resolved.envs)[0]
    if env not in resolved.envs:
        from .diagnostics import suggestion

        raise click.UsageError(f"unknown environment '{env}'" + suggestion(env, resolved.envs))
    click.echo(render_graph(resolved.envs[env], fmt), nl=False)


@main.command()
@click.argument("directory", type=click.Path())
def init(directory: str) -> None:
    """Scaffold a minimal spec repo in DIRECTORY that validates."""
    from .scaffold import scaffold

    for p in scaffold(Path(directory)):
        click.echo(f"created {p}", err=True)


if __name__ == "__main__":
    main()
