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
    from specops import diagnostics as D

    items = diags.sorted() if hasattr(diags, "sorted") else list(diags)
    stream = stream or sys.stderr
    if fmt == "json":
        click.echo(D.render_json(items), nl=False)
        return
    if fmt == "github":
        click.echo(D.render_github(items, prefix=_git_prefix(root)), nl=False)
    else:
        text = D.render_text(items, root)
        if text:
            click.echo(text, nl=False, file=stream)
    if items:
        click.echo(D.summary(items), file=stream)


def _git_prefix(root) -> str:
    """The spec repo's path inside its git checkout ("examples/churn/"), so GitHub
    annotations land on the right file when the specs live in a sub-folder."""
    import subprocess

    if root is None:
        return ""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not top:
        return ""
    rel = Path(root).resolve().relative_to(Path(top).resolve()).as_posix() if Path(root).resolve().is_relative_to(Path(top).resolve()) else ""
    return "" if rel in ("", ".") else rel + "/"


def _load_resolved(path: str, fmt: str = "text"):
    from specops.checks import analyze

    return analyze(path)


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
            from specops.diagnostics import SpecError

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

    Validate a repo of YAML specs; compile pipelines for KFP, SageMaker and ZenML plus vLLM
    serving configs; diff a pull request's effect; plan and apply each environment, with
    drift handled by policy.
    """


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--env", "envs", multiple=True, help="Check only these environments (default: all).")
def validate(path: str, fmt: str, envs: tuple[str, ...]) -> None:
    """Check every spec under PATH; report all problems at file:line:col."""
    from specops.checks import analyze
    from specops.frontend.loader import load

    repo = load(path)
    project = repo.project()
    if envs and project is not None:
        _check_env_names(envs, sorted(project.model.spec.environments))
    resolved = analyze(repo, list(envs) or None)
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
    from specops.resolve.render import render_env

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    if env not in resolved.envs:
        from specops.diagnostics import suggestion

        raise click.UsageError(f"unknown environment '{env}'" + suggestion(env, resolved.envs))
    click.echo(render_env(resolved, env), nl=False)


@main.command()
@click.option("--out", "out", type=click.Path(), default=None,
              help="Write one schema per kind plus specops.schema.json into this directory.")
def schema(out: str | None) -> None:
    """JSON Schema for every kind (and a combined one for yaml-language-server)."""
    from specops.frontend.schema import combined_schema, schema_files

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
    from specops.resolve.graph import render_graph

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    env = env or sorted(resolved.envs)[0]
    if env not in resolved.envs:
        from specops.diagnostics import suggestion

        raise click.UsageError(f"unknown environment '{env}'" + suggestion(env, resolved.envs))
    click.echo(render_graph(resolved.envs[env], fmt), nl=False)


@main.command(name="compile")
@click.argument("path", default=".", type=click.Path())
@click.option("--env", "envs", multiple=True, help="Environment(s) to compile (default: all).")
@click.option("--out", "out", type=click.Path(), default=None, help="Build directory (default: <repo>/build).")
@click.option("--check", is_flag=True, help="Exit 1 if the build directory is stale; write nothing.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--vllm-live", is_flag=True,
              help="Also parse every serve config with vLLM's own parser (needs a vLLM install; ~20 s).")
def compile_cmd(path: str, envs: tuple[str, ...], out: str | None, check: bool, fmt: str, vllm_live: bool) -> None:
    """Compile pipelines (KFP, SageMaker, ZenML) and vLLM serving for every environment."""
    from specops.build.cache import cache_dir_of, fast_compile
    from specops.build.output import stale_files, write_build

    # Unchanged inputs (every file's hash, specops's own code): the last build, nothing parsed.
    fast = fast_compile(path, envs)
    if fast is not None and all(e in fast.cached.envs for e in envs):
        from specops.build.manifest import Build

        root, build = fast.root, Build.from_record(fast.cached.index, fast.cached.blob)
    else:
        from specops.build.compile import compile_repo

        resolved = _load_resolved(path)
        _fail_on_errors(resolved, fmt)
        _check_envs(resolved, envs)
        root = resolved.repo.root
        build = compile_repo(resolved, list(envs) or None, cache_dir=cache_dir_of(root))
    if vllm_live:
        from specops.build.compile import live_check_serving

        build.diagnostics.extend(live_check_serving(build))
    _emit_diagnostics(build.diagnostics, root, fmt)
    if build.diagnostics.has_errors:
        sys.exit(1)
    files = build.files()
    out_dir = Path(out) if out else root / "build"
    if check:
        stale = stale_files(files, out_dir)
        if stale:
            for line in stale:
                click.echo(f"stale: {line}", err=True)
            click.echo(f"{out_dir} is out of date: run `specops compile`", err=True)
            sys.exit(1)
        click.echo(f"{out_dir} is up to date ({len(files)} files)", err=True)
        return
    written, removed = write_build(files, out_dir)
    click.echo(f"compiled {len(files) - 1} artifacts into {out_dir} ({written} written, {removed} removed)", err=True)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--env", "envs", multiple=True, help="Environment(s) (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def capacity(path: str, envs: tuple[str, ...], as_json: bool) -> None:
    """GPU capacity of every serving target: weights, KV cache, concurrency, cost."""
    import json

    from specops.checks.capacity import capacity_report, render_table
    from specops.diagnostics import Diagnostic
    from specops.ir.lower import lower_env

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    _check_envs(resolved, envs)
    reports, problems = [], []
    for env in sorted(envs or resolved.envs):
        for s in lower_env(resolved, env)[1]:
            if not s.model_config:
                continue
            r = capacity_report(resolved.repo.root, s)
            (problems if isinstance(r, Diagnostic) else reports).append(r)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2, sort_keys=True))
    else:
        click.echo(render_table(reports), nl=False)
    _emit_diagnostics(problems + [d for r in reports if (d := r.to_diagnostic()) is not None], resolved.repo.root, "text")
    if problems or any(r.verdict == "does-not-fit" for r in reports):
        sys.exit(1)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--env", "env", required=True, help="Environment whose pipelines run.")
@click.option("--model", "models", multiple=True, help="Only these models' pipelines (default: all).")
def run(path: str, env: str, models: tuple[str, ...]) -> None:
    """Compile and run lifecycle pipelines on a local target (ZenML's local stack).

    Every step runs for real: data checks, training, evaluation, the gates (which stop the
    run when a threshold fails) and registration into the local registry.
    """
    from specops.ir.lower import lower_env
    from specops.ops.runner import run_pipeline

    resolved = _load_resolved(path)
    _fail_on_errors(resolved, "text")
    _check_envs(resolved, (env,))
    view = resolved.envs[env]
    if view.target.provider != "local":
        raise click.UsageError(f"environment '{env}' runs on target '{view.target_name}' ({view.target.backend}, "
                               f"{view.target.provider}); `specops run` runs local targets — use `specops compile` "
                               "and your orchestrator for remote ones")
    pipelines = lower_env(resolved, env)[0]
    known = [p.model for p in pipelines]
    for m in models:
        if m not in known:
            from specops.diagnostics import suggestion

            raise click.UsageError(f"unknown model '{m}' in environment '{env}'" + suggestion(m, known))
    failed = False
    for p in pipelines:
        if models and p.model not in models:
            continue
        ok = run_pipeline(resolved, p, echo=lambda line: click.echo(line, err=True))
        failed = failed or not ok
    if failed:
        sys.exit(1)


def _check_env_names(envs, known) -> None:
    from specops.diagnostics import suggestion

    for env in envs:
        if env not in known:
            raise click.UsageError(f"unknown environment '{env}'" + suggestion(env, known))


def _check_envs(resolved, envs) -> None:
    from specops.diagnostics import suggestion

    for env in envs:
        if env not in resolved.envs:
            raise click.UsageError(f"unknown environment '{env}'" + suggestion(env, resolved.envs))


@main.command()
@click.argument("directory", type=click.Path())
def init(directory: str) -> None:
    """Scaffold a minimal spec repo in DIRECTORY that validates."""
    from specops.cli.scaffold import scaffold

    for p in scaffold(Path(directory)):
        click.echo(f"created {p}", err=True)


if __name__ == "__main__":
    main()
