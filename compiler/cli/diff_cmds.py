"""`specops diff`. Exit codes follow `terraform plan -detailed-exitcode`: 0 no changes,
2 changes, 1 error."""

from __future__ import annotations

import sys

import click

from specops.cli.common import echo_json, env_option, json_option, out_format
from specops.diff.render import render_json, render_markdown, render_text
from specops.diff.repo import DiffError, diff_repo


@click.command(name="diff")
@click.argument("path", default=".", type=click.Path())
@click.option("--base", "base", required=True, metavar="GIT-REF",
              help="Git ref to compare against (branch, tag, commit), e.g. origin/main.")
@env_option(multiple=True, help="Environment(s) to compare (repeatable; default: all).")
@json_option(("text", "markdown"))
def diff_cmd(path: str, base: str, envs: tuple[str, ...], fmt: str, as_json: bool) -> None:
    """Compile GIT-REF and the working tree; show what changes per environment and backend.

    The base is read from git's object store into a temporary folder: the working tree and
    the index are never touched. Exit 0: no changes; 2: changes; 1: error (including invalid
    specs in the base or the head, reported at file:line:col). markdown: a pull-request
    comment with a Mermaid lineage graph.
    """
    fmt = out_format(fmt, as_json)
    try:
        doc, mermaid = diff_repo(path, base, list(envs) or None)
    except DiffError as e:
        if fmt == "json":
            echo_json({"error": e.to_dict()})
        if e.rendered:
            click.echo(e.rendered, nl=False, err=True)
        click.echo(f"specops: error: {e}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(render_json(doc, mermaid), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(doc, mermaid), nl=False)
    else:
        click.echo(render_text(doc), nl=False)
    sys.exit(2 if doc["changed"] else 0)
