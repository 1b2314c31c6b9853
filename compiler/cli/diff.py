"""`specops diff`: registered on the main group by cli.py (`register(main)`).

Only click is imported here; the diff machinery loads when the command runs.
Exit codes follow `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
"""

from __future__ import annotations

import sys

import click


def register(main: click.Group) -> None:
    main.add_command(diff_cmd)


@click.command(name="diff")
@click.argument("path", default=".", type=click.Path())
@click.option("--base", "base", required=True, metavar="GIT-REF",
              help="Git ref to compare against (branch, tag, commit), e.g. origin/main.")
@click.option("--env", "envs", multiple=True, help="Environment(s) to compare (default: all).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="markdown: a pull-request comment with a Mermaid lineage graph.")
def diff_cmd(path: str, base: str, envs: tuple[str, ...], fmt: str) -> None:
    """Compile GIT-REF and the working tree; show what changes per environment and backend.

    The base is read from git's object store into a temporary folder: the working tree and
    the index are never touched. Exit 0: no changes; 2: changes; 1: error (including invalid
    specs in the base or the head, reported at file:line:col).
    """
    import json

    from specops.diff.render import render_json, render_markdown, render_text
    from specops.diff.repo import DiffError, diff_repo

    try:
        doc, mermaid = diff_repo(path, base, list(envs) or None)
    except DiffError as e:
        if fmt == "json":
            click.echo(json.dumps({"error": e.to_dict()}, indent=2, sort_keys=True))
        if e.rendered:
            click.echo(e.rendered, nl=False, err=True)
        click.echo(f"specops diff: error: {e}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(render_json(doc, mermaid), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(doc, mermaid), nl=False)
    else:
        click.echo(render_text(doc), nl=False)
    sys.exit(2 if doc["changed"] else 0)
