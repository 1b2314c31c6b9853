"""`specops history --env E`: the applies recorded in an environment's history, newest first
(who, which commit, what changed, the result); `--json` for tools."""

from __future__ import annotations

import click

from specops.checks import analyze
from specops.cli.common import echo_json, env_option, exit_on_errors, fail, json_option, out_format, require_envs
from specops.state import StateError, open_store

HISTORY_SCHEMA_VERSION = 1


@click.command()
@click.argument("path", default=".", type=click.Path())
@env_option()
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="Only the newest N applies.")
@json_option()
def history(path: str, env: str, limit: int | None, fmt: str, as_json: bool) -> None:
    """Who applied what to --env, from which commit, and how it ended (newest first)."""
    resolved = analyze(path)
    # Only a Project that cannot be read stops this: the history of an environment whose specs
    # now break a rule is exactly what one wants to read.
    if resolved.project is None:
        exit_on_errors(resolved.diagnostics, resolved.repo.root, "text")
    require_envs([env], resolved.envs)
    try:
        entries = open_store(resolved.project.state, env, resolved.repo.root).read_history()
    except StateError as e:
        fail(str(e))
    shown = list(reversed(entries))[:limit]
    if out_format(fmt, as_json) == "json":
        echo_json({"version": HISTORY_SCHEMA_VERSION, "env": env, "entries": shown})
        return
    if not shown:
        click.echo(f"No applies recorded for env '{env}'.")
        return
    for e in shown:
        commit = str(e.get("commit") or "no commit")[:12] + (" (dirty)" if e.get("dirty") else "")
        changes = [c for c in e.get("changes") or [] if isinstance(c, dict)]
        what = ", ".join(f"{c.get('action')} {c.get('address')}" for c in changes) or "no changes"
        line = f"{e.get('at')}  {str(e.get('result')):<10}  {e.get('who')} ({e.get('via')})  {commit}  {what}"
        click.echo(line)
        if e.get("error"):
            click.echo(f"    {e['error']}")
