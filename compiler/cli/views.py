"""Human renderings of plans and drift (the JSON forms come from the data classes), with
Terraform's symbols, coloured on a terminal: + create, ~ update, -/+ replace, - delete."""

from __future__ import annotations

import json
from typing import Any

import click

from specops.backends.registry import serving_resource_types
from specops.ops.plan import SYMBOLS, Action, Plan

COLORS = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.REPLACE: "magenta", Action.DELETE: "red",
          Action.DRIFT: "red", Action.ORPHAN: "cyan", Action.NOOP: None}
DIFF_SIGNS = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}


def value(v: Any) -> str:
    s = json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
    return s if len(s) <= 80 else s[:77] + "..."


class Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if self.color and (fg or bold) else text


def diff_line(x: Any, style: Style, note: str = "") -> str:
    sign, fg = DIFF_SIGNS.get(getattr(x, "op", "changed"), ("~", "yellow"))
    if x.op == "added":
        body = f"{x.path}: {value(x.after)}"
    elif x.op == "removed":
        body = f"{x.path}: {value(x.before)}"
    else:
        body = f"{x.path}: {value(x.before)} -> {value(x.after)}"
    return f"        {style(sign, fg)} {body}" + (f"  ({note})" if note else "")


def render_promotions(plan: Plan) -> list[str]:
    """Retrained versions waiting for a promotion through git, next to their model."""
    out = []
    for p in plan.promotions:
        gates = ", ".join(f"{g} {s}" for g, s in sorted(p.get("gates", {}).items()))
        where = f" ({p['address']})" if p.get("address") else ""
        how = (f"propose it with `{p['command']}`" if p.get("command") else
               f"no environment after {plan.env} deploys Model/{p['model']}, so `specops promote` has nowhere to pin it")
        out.append(f"  promotion pending: Model/{p['model']}{where} -> {p['registry']}@{p['version']}, retrained after "
                   f"monitor {p['monitor']} breached at {p['breach_time']}{f'; gates: {gates}' if gates else ''}; {how}")
    return out


def render_plan(plan: Plan, *, color: bool = False, verbose_limit: int = 20) -> str:
    st = Style(color)
    lines = [f"env {plan.env} (target {plan.target}); state serial "
             f"{plan.state_serial if plan.state_serial is not None else 'none'}"
             f"{'' if plan.refreshed else '; live state not refreshed'}"]
    if plan.mode == "refresh-only":
        return render_refresh_only(plan, lines, st)
    for problem in plan.problems:
        lines.append(st(f"Problem: {problem}", "red", bold=True))
    shown = [c for c in plan.changes if c.action != Action.NOOP or c.drift or c.blocked]
    lines.extend(render_promotions(plan))
    if not shown:
        lines.append("No changes. The live system matches the specs.")
        return "\n".join(lines) + "\n"
    lines.append("")
    serving_types = set(serving_resource_types().values())
    for c in shown:
        head = f"  {st(f'{SYMBOLS[c.action]:>3}', COLORS[c.action], bold=True)} {c.address}  {c.action}"
        if c.blocked:
            head += " " + st("(blocked by gates)", "red")
        if c.reason:
            head += f": {c.reason}"
        lines.append(head)
        for title, diffs in (("live vs state", c.drift_diffs), ("", c.diffs)):
            if not diffs:
                continue
            if c.action == Action.CREATE and not title:
                files = sorted({x.path.split(':')[0] for x in diffs})
                lines.append(f"        {len(files)} file(s): {', '.join(files)}")
                continue
            lines.extend(diff_line(x, st, title) for x in diffs[:verbose_limit])
            if len(diffs) > verbose_limit:
                lines.append(f"        ... {len(diffs) - verbose_limit} more")
        for g in c.gates:
            extra = f" ({g['message']})" if g["message"] else ""
            lines.append(f"        gate {g['gate']}: {g['status']}{extra}")
        cap = plan.capacity.get(c.name) if c.type in serving_types else None
        if cap:
            cost = f"; ${cap['usd_per_hour']:.2f}/h" if cap.get("usd_per_hour") is not None else ""
            lines.append(f"        capacity {cap['verdict']}: {cap['reason']}{cost}")
    n = plan.counts()
    lines.append("")
    lines.append(f"Plan: {n['create']} to create, {n['update']} to update, {n['replace']} to replace, "
                 f"{n['delete']} to delete; {len(plan.drifted)} drifted, {n['orphan']} orphaned, "
                 f"{n['blocked']} blocked by gates.")
    return "\n".join(lines) + "\n"


def render_refresh_only(plan: Plan, lines: list[str], st: Style) -> str:
    if not plan.drifted:
        lines.append("No changes. The live system matches the recorded state.")
        return "\n".join(lines) + "\n"
    lines += ["", "Objects changed outside specops; apply --refresh-only records them as they are:"]
    for c in plan.drifted:
        lines.append(f"  {st('  !', 'red', bold=True)} {c.address}")
        lines.extend(diff_line(x, st) for x in c.drift_diffs[:20])
    lines += ["", f"Refresh: {len(plan.drifted)} resource(s) to accept into state."]
    return "\n".join(lines) + "\n"


def render_drift(plan: Plan | None, env: str, serial: int | None, *, color: bool = False) -> str:
    st = Style(color)
    if plan is None:
        return f"env {env}: no state yet (nothing applied), so nothing can drift\n"
    if not plan.drifted:
        return f"env {env}: no drift; the live system matches the state (serial {serial})\n"
    lines = [f"env {env}: {len(plan.drifted)} resource(s) changed outside specops "
             f"(policy drift: {plan.policy['drift']})"]
    for c in plan.drifted:
        lines.append(f"  {st(f'{SYMBOLS[Action.DRIFT]:>3}', 'red', bold=True)} {c.address}")
        lines.extend(diff_line(x, st) for x in c.drift_diffs)
    return "\n".join(lines) + "\n"


# ---- markdown (pull-request comments) -----------------------------------------------------

PLAN_MARKER = "<!-- specops-plan -->"
FENCE = "`" * 3


def plan_headline(plan: Plan) -> str:
    """What an environment's plan would do, in a few words: "1 to update, 1 drifted"."""
    n = plan.counts()
    parts = [f"{n[a]} to {a}" for a in ("create", "update", "replace", "delete") if n[a]]
    if plan.drifted:
        parts.append(f"{len(plan.drifted)} drifted")
    if n["blocked"]:
        parts.append(f"{n['blocked']} blocked by gates")
    if n["orphan"]:
        parts.append(f"{n['orphan']} orphaned")
    return ", ".join(parts) if parts else "no changes"


def render_plans_markdown(plans: list[Plan]) -> str:
    """One markdown document for several environments' plans: a table that says which would
    change and how, then each plan in a collapsible block (the CI kit's pull-request comment)."""
    changing = [p.env for p in plans if p.has_changes]
    lines = [PLAN_MARKER, "### specops plan", "",
             f"{len(changing)} of {len(plans)} environment(s) would change"
             + (": " + ", ".join(f"`{e}`" for e in changing) + "." if changing else "."),
             "", "| environment | target | live refresh | plan |", "|---|---|---|---|"]
    for p in plans:
        head = plan_headline(p)
        lines.append(f"| `{p.env}` | `{p.target}` | {'yes' if p.refreshed else 'no'} | "
                     + (f"**{head}**" if p.has_changes else head) + " |")
    for p in plans:
        text = render_plan(p).rstrip("\n").replace(FENCE, "'''")  # a fence inside would end the block
        lines += ["", f"<details{' open' if p.has_changes else ''}><summary><code>{p.env}</code>: "
                  f"{plan_headline(p)}</summary>", "", FENCE, text, FENCE, "", "</details>"]
    return "\n".join(lines) + "\n"
