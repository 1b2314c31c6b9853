"""`specops lock`: pin every dataset source by content in specops.lock."""

from __future__ import annotations

import sys

import click

from specops.cli.common import echo_json, emit_diagnostics, json_option, out_format
from specops.ops.lock import lock_repo


@click.command(name="lock")
@click.argument("path", default=".", type=click.Path())
@click.option("--check", is_flag=True, help="Compare the live pins with specops.lock instead of writing it "
              "(exit 1 when they differ): remote data that moved behind git's back.")
@json_option()
def lock_cmd(path: str, check: bool, fmt: str, as_json: bool) -> None:
    """Pin every dataset source by content in specops.lock (commit it).

    file:// sources by sha256, s3:// by ETag and VersionId, gs:// by generation, hf:// by the
    Hub commit. validate and diff then report a local file that changed without a relock, and
    each pipeline's data_check step refuses data that differs from its pin. Exit 1 on errors,
    and with --check when a pin moved.
    """
    fmt = out_format(fmt, as_json)
    result = lock_repo(path, check=check)
    if len(result.diagnostics):
        emit_diagnostics(result.diagnostics, result.root, "text")
    stale = check and bool(result.changes)
    if fmt == "json":
        echo_json({"version": 1, "sources": result.sources, "changes": result.changes, "written": result.written,
                   "stale": stale, "errors": result.diagnostics.has_errors})
    else:
        for line in result.changes:
            click.echo(line)
        if result.diagnostics.has_errors:
            pass
        elif stale:
            click.echo(f"specops.lock is stale: {len(result.changes)} source(s) differ; run `specops lock`", err=True)
        elif result.written:
            click.echo(f"wrote specops.lock ({len(result.sources)} source(s))")
        else:
            click.echo(f"specops.lock is current ({len(result.sources)} source(s))")
    if result.diagnostics.has_errors or stale:
        sys.exit(1)
