"""`specops state list | show | rm | mv`: look at and repair recorded state. Writes go
through the store's lock and its backed-up write path (specops.state.edit)."""

from __future__ import annotations

import json

import click

from specops.checks import analyze
from specops.cli.common import echo_json, env_option, exit_on_errors, fail, json_option, out_format, require_envs
from specops.cli.ops_cmds import parse_duration
from specops.state import StateError, StateStore, edit, open_store


def _store(path: str, env: str) -> StateStore:
    resolved = analyze(path)
    exit_on_errors(resolved.diagnostics, resolved.repo.root, "text")
    require_envs([env], resolved.envs)
    return open_store(resolved.project.state, env, resolved.repo.root)


@click.group()
def state() -> None:
    """Look at and repair recorded state."""


@state.command(name="list")
@click.argument("path", default=".", type=click.Path())
@env_option()
@json_option()
def list_cmd(path: str, env: str, fmt: str, as_json: bool) -> None:
    """The addresses recorded in --env's state."""
    try:
        doc = edit.list_resources(_store(path, env))
    except StateError as e:
        fail(str(e))
    if out_format(fmt, as_json) == "json":
        echo_json(doc)
        return
    for r in doc["resources"]:
        click.echo(r["address"])


@state.command()
@click.argument("address")
@click.argument("path", default=".", type=click.Path())
@env_option()
@json_option()
def show(address: str, path: str, env: str, fmt: str, as_json: bool) -> None:
    """Everything recorded for ADDRESS: ids, outputs, content hash, attributes."""
    try:
        doc = edit.show(_store(path, env), address)
    except StateError as e:
        fail(str(e))
    if out_format(fmt, as_json) == "json":
        echo_json(doc)
        return
    r = doc["resource"]
    click.echo(f"# {r['address']} (env {env})")
    for key in ("type", "name", "content_hash"):
        click.echo(f"{key}: {r[key]}")
    for key in ("ids", "outputs", "depends_on", "attributes"):
        click.echo(f"{key}: {json.dumps(r[key], indent=2, sort_keys=True, default=str)}")


@state.command()
@click.argument("address")
@click.argument("path", default=".", type=click.Path())
@env_option()
@click.option("--lock-timeout", "lock_timeout", default="0s", show_default=True, metavar="DURATION")
def rm(address: str, path: str, env: str, lock_timeout: str) -> None:
    """Forget ADDRESS (the live object is left alone; the previous state is kept as a backup)."""
    try:
        edit.remove(_store(path, env), address, lock_timeout=parse_duration(lock_timeout))
    except StateError as e:
        fail(str(e))
    click.echo(f"removed {address} from the state of env '{env}'")


@state.command()
@click.argument("source")
@click.argument("destination")
@click.argument("path", default=".", type=click.Path())
@env_option()
@click.option("--lock-timeout", "lock_timeout", default="0s", show_default=True, metavar="DURATION")
def mv(source: str, destination: str, path: str, env: str, lock_timeout: str) -> None:
    """Record SOURCE under the address DESTINATION (a renamed spec keeps its live object)."""
    try:
        edit.move(_store(path, env), source, destination, lock_timeout=parse_duration(lock_timeout))
    except StateError as e:
        fail(str(e))
    click.echo(f"moved {source} to {destination} in the state of env '{env}'")
