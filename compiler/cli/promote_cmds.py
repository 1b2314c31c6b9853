"""`specops promote`: pin the version one environment serves in another, on a new git branch."""

from __future__ import annotations

import click

from specops.checks import analyze
from specops.cli.common import echo_json, exit_on_errors, fail, json_option, out_format
from specops.ops.promote import PromoteError, promote


@click.command(name="promote")
@click.argument("name", metavar="MODEL")
@click.argument("path", default=".", type=click.Path())
@click.option("--from", "from_env", required=True, help="The environment whose served version is promoted.")
@click.option("--to", "to_env", required=True, help="The environment that will deploy it.")
@click.option("--branch", default=None, help="The new branch (default: promote/<model>-<to>-v<version>).")
@click.option("--version", "model_version", default=None, metavar="N",
              help="Promote this registry version (a monitor's retrain, which `plan` names) instead of the one "
                   "--from serves; its gates must have passed in --from.")
@json_option()
def promote_cmd(name: str, path: str, from_env: str, to_env: str, branch: str | None, model_version: str | None,
                fmt: str, as_json: bool) -> None:
    """Write the spec change that promotes MODEL: in --to's overrides, pin the registered version
    --from serves (version and digest), as a commit on a new branch, ready for a pull request.

    Refuses, naming the gate, unless every gate that blocks --from passed there for that digest.
    Your checkout, index and working tree are left as they are.
    """
    fmt = out_format(fmt, as_json)
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt)
    try:
        out = promote(resolved, name, from_env, to_env, branch=branch, version=model_version)
    except PromoteError as e:
        fail(str(e))
    if fmt == "json":
        echo_json({"version": 1, **out.to_dict()})
    elif out.branch is None:
        click.echo(f"{out.to_env} already pins {out.registry} version {out.version} ({out.digest}); nothing to do")
    else:
        click.echo(f"Promoted {out.registry} version {out.version} ({out.digest}) from {out.from_env} to "
                   f"{out.to_env}: gates passed in {out.from_env}: {', '.join(out.gates) or 'none block it'}.")
        click.echo(f"Wrote overrides.{out.to_env}.registry.pin in {out.file} as commit {out.commit[:12]} on the "
                   f"new branch {out.branch}.")
        click.echo(f"Next: git push -u origin {out.branch}, then open a pull request.")
