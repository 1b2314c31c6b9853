"""`specops compile`. Its module imports only what the no-op path needs (the cache, the
manifest and the writer: standard library), so an unchanged repo recompiles in tens of
milliseconds; the loader and the backends are imported only when something changed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from specops.build.cache import cache_dir_of, fast_compile, tree_record
from specops.build.manifest import Build, record_diagnostics
from specops.build.output import stale_files, tree_current, write_build
from specops.cli.common import (
    DIAG_FORMATS,
    diagnostics_json,
    echo_json,
    emit_diagnostics,
    env_option,
    exit_on_errors,
    json_option,
    out_format,
    require_envs,
    verbose_option,
)
from specops.diagnostics import Diagnostics


@click.command(name="compile")
@click.argument("path", default=".", type=click.Path())
@env_option(multiple=True, help="Environment(s) to compile (repeatable; default: all).")
@click.option("--out", "out", type=click.Path(), default=None, help="Build directory (default: <repo>/build).")
@click.option("--check", is_flag=True, help="Exit 1 if the build directory is stale; write nothing.")
@json_option(DIAG_FORMATS)
@click.option("--vllm-live", is_flag=True,
              help="Also parse every serve config with vLLM's own parser (needs a vLLM install; ~20 s).")
@verbose_option
def compile_cmd(path: str, envs: tuple[str, ...], out: str | None, check: bool, fmt: str, as_json: bool,
                vllm_live: bool) -> None:
    """Compile pipelines (KFP, SageMaker, ZenML) and vLLM serving for every environment."""
    fmt = out_format(fmt, as_json)
    # Unchanged inputs (every file's hash, specops's own code): the last build, nothing parsed.
    fast = fast_compile(path, envs)
    build: Build | None = None
    if fast is not None and all(e in fast.cached.envs for e in envs):
        root, head = fast.root, fast.cached.head
        out_dir = Path(out) if out else root / "build"
        if not vllm_live and tree_current(out_dir, head["manifestSha"], tree_record(root), refresh=not check):
            # ...and the build folder holds that build (its stat record, output.py): nothing
            # to make, compare or write; the artifacts' index is not even parsed.
            _report(record_diagnostics(head), root, fmt, out_dir, head["artifactCount"] + 1, check, [], (0, 0))
            return
        index = fast.cached.build_index()
        build = None if index is None else Build.from_record(index, fast.cached.blob)
    if build is None:
        from specops.build.checkrecords import records_of
        from specops.build.compile import compile_repo  # the full path: loader, checks, backends
        from specops.checks import analyze
        from specops.gcpause import paused_gc

        # The loaded repo (a million objects at 10,000 specs) lives until the build is made:
        # the collections the compile triggers need not walk it again each time (16% of a
        # 10k edit's CPU was the cycle collector), so it is frozen when analyze ends, before
        # the collector resumes (resuming first walked all of it once: 0.1-0.2 s at 10k). A
        # one-shot command: nothing is unfrozen.
        with paused_gc(until_exit=True):
            # What the edit did not reach is not checked again (build/checkrecords.py).
            resolved = analyze(path, parse_memo=True, records=records_of)
        exit_on_errors(resolved.diagnostics, resolved.repo.root, fmt, {"version": 1, "ok": False})
        require_envs(envs, resolved.envs)
        root = resolved.repo.root
        build = compile_repo(resolved, list(envs) or None, cache_dir=cache_dir_of(root))
        del resolved  # the loaded repo: its memory is reused for writing the build tree
        out_dir = Path(out) if out else root / "build"
    if vllm_live:
        from specops.build.compile import live_check_serving

        build.diagnostics.extend(live_check_serving(build))
    exit_on_errors(build.diagnostics, root, fmt, {"version": 1, "ok": False})
    files = build.lazy_files()
    if check:
        _report(build.diagnostics, root, fmt, out_dir, len(files), True, stale_files(files, out_dir), (0, 0))
    else:
        _report(build.diagnostics, root, fmt, out_dir, len(files), False, [],
                write_build(files, out_dir, tree_record(root), build.shas()))


def _report(diags: Diagnostics, root: Path, fmt: str, out_dir: Path, n_files: int, check: bool, stale: list[str],
            done: tuple[int, int]) -> None:
    """The warnings, then `--check`'s verdict (exit 1 when stale) or what was written."""
    exit_on_errors(diags, root, fmt, {"version": 1, "ok": False})
    emit_diagnostics(diags, root, fmt)  # warnings
    doc = {"version": 1, "ok": True, "artifacts": n_files - 1, "diagnostics": diagnostics_json(diags)}
    if check:
        if fmt == "json":
            echo_json({**doc, "ok": not stale, "stale": stale})
        else:
            for line in stale:
                click.echo(f"stale: {line}", err=True)
            click.echo(f"{out_dir} is out of date: run `specops compile`" if stale
                       else f"{out_dir} is up to date ({n_files} files)", err=True)
        if stale:
            sys.exit(1)
        return
    written, removed = done
    if fmt == "json":
        echo_json({**doc, "written": written, "removed": removed})
    else:
        click.echo(f"compiled {n_files - 1} artifacts into {out_dir} ({written} written, {removed} removed)",
                   err=True)
