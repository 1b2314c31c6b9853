"""Prompts: the template parses, and its variables agree with the declared ones.

The template is parsed and its AST walked by `specops.runtime.render.variables_used`; jinja2's
code generator (which folds constants: `{{ 'a' * 10**10 }}`) never runs at validate time.
A variable's problem is reported at the line that uses it, not at the `template:` key.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import jinja2

from specops.checks.common import at
from specops.diagnostics import Diagnostic, Diagnostics, Pos, suggestion
from specops.runtime.render import Use, variables_used

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import Resolved


def template_pos(resolved: "Resolved", node: "Node", path: tuple, lineno: int, word: str | None = None) -> Pos:
    """Map a line inside a template string (a spec value at `path` under `spec`) to the YAML
    file's line (block scalars start one line below their `|` indicator); with `word`, the
    column of its first whole-word occurrence on that line."""
    pos = node.doc.pos_of(("spec",) + path)
    raw = resolved.repo.files.get(node.file, b"").decode("utf-8", "replace").splitlines()
    first = raw[pos.line - 1][pos.col - 1:pos.col] if 0 < pos.line <= len(raw) else ""
    offset = 1 if first in ("|", ">") else 0
    line = pos.line + offset + lineno - 1
    col = pos.col if lineno == 1 and not offset else 1
    if word and 0 < line <= len(raw):
        m = re.compile(rf"(?<![\w.]){re.escape(word)}(?!\w)").search(raw[line - 1], col - 1)
        if m:
            return Pos(line, m.start() + 1, line, m.end() + 1)
    return Pos(line, col)


def template_texts(spec: object) -> list[tuple[tuple, str]]:
    """(path under spec, text) of every template string of a Prompt spec."""
    if getattr(spec, "template", None) is not None:
        return [(("template",), spec.template)]  # type: ignore[attr-defined]
    return [(("messages", i, "content"), m.content) for i, m in enumerate(getattr(spec, "messages", None) or [])]


def template_uses(resolved: "Resolved", node: "Node", texts: list[tuple[tuple, str]],
                  out: Diagnostics) -> list[tuple[tuple, Use]] | None:
    """Every variable read in `texts` as (path, use), first use per name; None (and a
    diagnostic) when a text does not parse or uses what a prompt cannot."""
    found: list[tuple[tuple, Use]] = []
    ok = True
    for path, text in texts:
        try:
            uses, bad = variables_used(text)
        except jinja2.TemplateSyntaxError as e:
            out.add(Diagnostic("error", "template-syntax", f"template does not parse: {e.message}",
                               node.file, template_pos(resolved, node, path, e.lineno or 1)))
            ok = False
            continue
        for b in bad:
            out.add(Diagnostic("error", "template-syntax",
                               f"a prompt template cannot use {{% {b.what} %}}: it has no other templates to load",
                               node.file, template_pos(resolved, node, path, b.line, b.what)))
            ok = False
        found.extend((path, u) for u in uses)
    if not ok:
        return None
    first: dict[str, tuple[tuple, Use]] = {}
    for path, u in found:
        first.setdefault(u.name, (path, u))
    return list(first.values())


def check_prompt(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    if (spec.template is None) == (spec.messages is None):
        out.add(at(node, (), "value", "a Prompt needs exactly one of `template` or `messages`", prefer_key=True))
        return
    uses = template_uses(resolved, node, template_texts(spec), out)
    if uses is None:
        return  # variables cannot be compared with a template that does not parse
    declared = spec.variables
    used = {u.name for _, u in uses}
    for path, u in uses:
        if u.name not in declared:
            out.add(Diagnostic("error", "template-vars",
                               f"template uses variable '{u.name}' that is not declared under `variables`"
                               + suggestion(u.name, declared), node.file,
                               template_pos(resolved, node, path, u.line, u.name)))
    for var in sorted(declared):
        if var not in used:
            out.add(at(node, ("variables", var), "template-vars",
                        f"variable '{var}' is declared but the template never uses it"
                        + suggestion(var, used), prefer_key=True))
