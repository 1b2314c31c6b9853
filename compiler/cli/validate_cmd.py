"""`specops validate`. Its module imports only what the unchanged-repo path needs (the validate
cache, the diagnostics renderer: no pydantic, no YAML), so validating a repo whose inputs
did not change since the last run replays that run's report in a fraction of a second; the
loader and the checks are imported only when something changed (build/checkcache.py)."""

from __future__ import annotations

import sys

import click

from specops.build import checkcache
from specops.cli.common import (
    DIAG_FORMATS,
    diagnostics_json,
    echo_json,
    emit_diagnostics,
    env_option,
    json_option,
    out_format,
    require_envs,
    verbose_option,
)


@click.command()
@click.argument("path", default=".", type=click.Path())
@json_option(DIAG_FORMATS)
@env_option(multiple=True, help="Check only these environments (repeatable; default: all).")
@verbose_option
def validate(path: str, fmt: str, as_json: bool, envs: tuple[str, ...]) -> None:
    """Check every spec under PATH; report all problems at file:line:col."""
    fmt = out_format(fmt, as_json)
    hit = checkcache.lookup(path, envs)
    if hit is not None:
        root, diags, n_specs, env_names = hit.root, hit.diagnostics, hit.specs, hit.envs
    else:
        from specops.build.checkrecords import records_of
        from specops.checks import analyze
        from specops.frontend.loader import load
        from specops.gcpause import paused_gc

        t0 = checkcache.started()
        with paused_gc(until_exit=True):  # see gcpause: a fifth of validate at 10,000 specs
            repo = load(path, parse_memo=True)
            project = repo.project()
            if envs and project is not None:
                require_envs(envs, project.model.spec.environments)
            # What an edit did not reach is not checked again (build/checkrecords.py).
            resolved = analyze(repo, list(envs) or None, records=records_of)
            checkcache.store(resolved, t0, envs)
        root, diags, n_specs, env_names = repo.root, resolved.diagnostics, len(repo.specs), sorted(resolved.envs)
    if fmt == "json":
        echo_json({"version": 1, "valid": not diags.has_errors, "specs": n_specs,
                   "environments": env_names, "diagnostics": diagnostics_json(diags)})
    else:
        emit_diagnostics(diags, root, fmt)
    if diags.has_errors:
        sys.exit(1)
    if fmt == "text":
        n, e = n_specs, len(env_names)
        click.echo(f"{n} spec{'s' if n != 1 else ''} valid in {e} environment{'s' if e != 1 else ''}", err=True)
