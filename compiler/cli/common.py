"""What every command shares: options (--env with SPECOPS_ENV, --json, --no-color), the one
way to fail (one line on stderr, exit 1), diagnostics output, and loading a repo.

Exit codes follow Terraform: 0 ok, 1 any error (usage errors included), 2 only for "changes
present" (`plan --detailed-exitcode`, `drift`, `diff`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn

import click

from specops import diagnostics as D

DIAG_FORMATS = ("text", "json", "github")


def fail(msg: str) -> NoReturn:
    click.echo(f"specops: error: {msg}", err=True)
    sys.exit(1)


def env_option(*, required: bool = True, multiple: bool = False, help: str | None = None) -> Callable:
    """`--env`, defaulting to $SPECOPS_ENV (several names: space-separated)."""
    return click.option(
        "--env", "envs" if multiple else "env", envvar="SPECOPS_ENV", required=required and not multiple,
        multiple=multiple, show_envvar=True,
        help=help or ("Environment(s) (repeatable; default: all)." if multiple else "Environment."))


def json_option(formats: Iterable[str] = ("text",)) -> Callable:
    """`--json`, and `--format` for the renderings that are not JSON (`--format json` is an
    alias of `--json`). The command receives `fmt`."""
    choices = list(dict.fromkeys([*formats, "json"]))

    def deco(fn: Callable) -> Callable:
        fn = click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                          help="Output format; json is the same as --json.")(fn)
        return click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")(fn)
    return deco


def out_format(fmt: str, as_json: bool) -> str:
    return "json" if as_json else fmt


def no_color_option(fn: Callable) -> Callable:
    return click.option("--no-color", "no_color", is_flag=True, help="No colour (also: NO_COLOR=1).")(fn)


def use_color(no_color: bool = False) -> bool:
    """Colour on a terminal, unless --no-color (here or before the command) or NO_COLOR."""
    ctx = click.get_current_context(silent=True)
    root_off = bool(ctx and ctx.find_root().params.get("no_color"))
    return not (no_color or root_off or os.environ.get("NO_COLOR")) and sys.stdout.isatty()


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str))


# ---- diagnostics ---------------------------------------------------------------------------


def git_prefix(root: Path | None) -> str:
    """The spec repo's path inside its git checkout ("examples/churn/"), so GitHub
    annotations land on the right file when the specs live in a sub-folder."""
    if root is None:
        return ""
    import subprocess  # here, not at the top: every command imports this module (start-up)

    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not top:
        return ""
    r, t = Path(root).resolve(), Path(top).resolve()
    rel = r.relative_to(t).as_posix() if r.is_relative_to(t) else ""
    return "" if rel in ("", ".") else rel + "/"


_VERBOSE = "specops.verbose"


def verbose_option(fn: Callable) -> Callable:
    """`--verbose`: every diagnostic on its own, identical warnings included (by default they
    fold into one line with a count, see diagnostics.collapse)."""
    def remember(ctx: click.Context, _param: Any, value: bool) -> bool:
        ctx.meta[_VERBOSE] = value
        return value

    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=remember,
                        help="Show every diagnostic; identical warnings are otherwise folded into one.")(fn)


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(_VERBOSE))


def emit_diagnostics(diags: Any, root: Path | None, fmt: str = "text") -> None:
    """Diagnostics on stderr as text (source line and caret) or GitHub annotations; with
    `json`, nothing here: the command puts them into its JSON document (always every one)."""
    items = diags.sorted() if hasattr(diags, "sorted") else list(diags)
    if fmt == "json":
        return
    shown = items if _verbose() else D.collapse(items)
    if fmt == "github":
        click.echo(D.render_github(shown, prefix=git_prefix(root)), nl=False)
    else:
        text = D.render_text(shown, root)
        if text:
            click.echo(text, nl=False, err=True)
    if items:
        click.echo(D.summary(items, len(shown)), err=True)


def diagnostics_json(diags: Any) -> list[dict]:
    items = diags.sorted() if hasattr(diags, "sorted") else list(diags)
    return [d.to_json() for d in items]


def exit_on_errors(diags: Any, root: Path | None, fmt: str, doc: dict | None = None) -> None:
    """Report and exit 1 when `diags` holds errors; with --json the report is `doc` plus the
    diagnostics, on stdout."""
    if not diags.has_errors:
        return
    if fmt == "json":
        echo_json({**(doc or {"version": 1}), "diagnostics": diagnostics_json(diags)})
    else:
        emit_diagnostics(diags, root, fmt)
    sys.exit(1)


# ---- environments ---------------------------------------------------------------------------


def require_envs(envs: Iterable[str], known: Iterable[str]) -> None:
    """Every name in `envs` is a declared environment, else a usage error with "did you mean"
    (the one place this check is written)."""
    known = sorted(known)
    for env in envs:
        if env not in known:
            raise click.UsageError(f"unknown environment '{env}'" + D.suggestion(env, known)
                                   + (f" (declared: {', '.join(known)})" if known else ""))
