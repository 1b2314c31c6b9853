"""`specops lock`: registered on the main group by cli/__init__.py (`register(main)`).

Only click is imported here; the lock engine (specops.ops.lock) loads when the command runs.
"""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    main.add_command(lock_cmd)


@click.command(name="lock")
@click.argument("path", default=".", type=click.Path())
@click.option("--check", is_flag=True, help="Compare the live pins with specops.lock instead of writing it "
              "(exit 1 when they differ): remote data that moved behind git's back.")
def lock_cmd(path: str, check: bool) -> None:
    """Pin every dataset source by content in specops.lock (commit it).

    file:// sources by sha256, s3:// by ETag and VersionId, gs:// by generation, hf:// by the
    Hub commit. validate and diff then report a local file that changed without a relock, and
    each pipeline's data_check step refuses data that differs from its pin.
    """
    from specops.cli.app import _emit_diagnostics
    from specops.ops.lock import lock_repo

    result = lock_repo(path, check=check)
    if result.diagnostics.has_errors or len(result.diagnostics):
        _emit_diagnostics(result.diagnostics, result.root, "text")
    if result.diagnostics.has_errors:
        raise SystemExit(1)
    for line in result.changes:
        click.echo(line)
    if check:
        if result.changes:
            click.echo(f"specops.lock is stale: {len(result.changes)} source(s) differ; run `specops lock`", err=True)
            raise SystemExit(1)
        click.echo(f"specops.lock is current ({len(result.sources)} source(s))")
    elif result.written:
        click.echo(f"wrote specops.lock ({len(result.sources)} source(s))")
    else:
        click.echo(f"specops.lock is current ({len(result.sources)} source(s))")
