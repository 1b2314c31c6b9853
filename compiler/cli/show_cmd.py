"""`specops show PLANFILE...`: saved plans as text, markdown (one PR comment for several
environments) or JSON, without compiling or touching anything (Terraform's `show`)."""

from __future__ import annotations

import sys

import click

from specops.cli.common import echo_json, fail, json_option, no_color_option, out_format, use_color
from specops.cli.views import render_plan, render_plans_markdown
from specops.ops import savedplan
from specops.ops.plan import PlanError


@click.command()
@click.argument("planfiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option(formats=("text", "markdown"))
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0: no plan has changes, 2: some do, 1: error.")
@no_color_option
def show(planfiles: tuple[str, ...], fmt: str, as_json: bool, detailed_exitcode: bool, no_color: bool) -> None:
    """Show saved plans (`specops plan --out FILE`), e.g. every environment's plan as one
    markdown comment: `specops show plans/*.plan --format markdown`."""
    fmt = out_format(fmt, as_json)
    try:
        plans = [savedplan.as_shown(savedplan.load(f)) for f in planfiles]
    except PlanError as e:
        fail(str(e))
    if fmt == "json":
        echo_json({"version": 1, "plans": [p.to_dict() for p in plans], "changes": any(p.has_changes for p in plans)})
    elif fmt == "markdown":
        click.echo(render_plans_markdown(plans), nl=False)
    else:
        click.echo("\n".join(render_plan(p, color=use_color(no_color)) for p in plans), nl=False)
    if detailed_exitcode and any(p.has_changes for p in plans):
        sys.exit(2)
