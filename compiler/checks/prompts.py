"""Prompts: the template parses, and its variables agree with the declared ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from specops.checks.common import at
from specops.diagnostics import Diagnostic, Diagnostics, Pos, suggestion

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import Resolved


def _template_line(resolved: "Resolved", node: "Node", path: tuple, lineno: int) -> Pos:
    """Map a line inside a template string to the YAML file line (block scalars start one
    line below their `|` indicator)."""
    pos = node.doc.pos_of(("spec",) + path)
    raw = resolved.repo.files.get(node.file, b"").decode("utf-8", "replace").splitlines()
    first = raw[pos.line - 1][pos.col - 1:pos.col] if 0 < pos.line <= len(raw) else ""
    offset = 1 if first in ("|", ">") else 0
    return Pos(pos.line + offset + lineno - 1, pos.col if lineno == 1 and not offset else 1)


def check_prompt(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    if (spec.template is None) == (spec.messages is None):
        out.add(at(node, (), "value", "a Prompt needs exactly one of `template` or `messages`", prefer_key=True))
        return
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    texts: list[tuple[tuple, str]] = ([(("template",), spec.template)] if spec.template is not None else
                                      [(("messages", i, "content"), m.content) for i, m in enumerate(spec.messages)])
    used: dict[str, tuple] = {}
    for path, text in texts:
        try:
            ast = env.parse(text)
        except jinja2.TemplateSyntaxError as e:
            out.add(Diagnostic("error", "template-syntax", f"template does not parse: {e.message}",
                               node.file, _template_line(resolved, node, path, e.lineno or 1)))
            return  # variables cannot be compared with a template that does not parse
        for var in sorted(meta.find_undeclared_variables(ast)):
            used.setdefault(var, path)
    declared = spec.variables
    for var, path in sorted(used.items()):
        if var not in declared:
            out.add(at(node, path, "template-vars",
                        f"template uses variable '{var}' that is not declared under `variables`"
                        + suggestion(var, declared)))
    for var in sorted(declared):
        if var not in used:
            out.add(at(node, ("variables", var), "template-vars",
                        f"variable '{var}' is declared but the template never uses it"
                        + suggestion(var, used), prefer_key=True))


