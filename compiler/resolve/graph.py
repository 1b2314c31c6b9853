"""The lineage graph of one environment: dataset -> model -> gate -> serving, as Mermaid or DOT.

References point from a consumer to what it uses; lineage is drawn the other way (data flows
from the dataset into the model), so every edge is drawn dst -> src.
"""

from __future__ import annotations

import re

from specops.resolve.refs import EnvView

_SHAPES = {"Dataset": ("[(", ")]"), "Model": ("[", "]"), "Prompt": ("[/", "/]"),
           "EvalGate": ("{{", "}}"), "ServingTarget": ("([", "])")}


def lineage_keys(view: EnvView) -> list[str]:
    """The specs of the lineage: every kind but policy rules (they check it, they are not in it)."""
    return sorted(k for k, n in view.nodes.items() if n.kind != "Rule")


def node_id(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


def _label(s: str) -> str:
    # Names are DNS labels, so nothing in them needs Mermaid escaping beyond quotes.
    return s.replace('"', "'")


def graph_document(view: EnvView) -> dict:
    """`graph --json`: nodes and lineage edges (from what is used to what uses it)."""
    nodes = []
    for key in lineage_keys(view):
        n = view.nodes[key]
        nodes.append({"key": key, "kind": n.kind, "name": n.name, "file": n.file})
    edges = [{"from": a, "to": b} for a, b in lineage_edges(view)]
    return {"version": 1, "env": view.name, "nodes": nodes, "edges": edges}


def lineage_edges(view: EnvView) -> list[tuple[str, str]]:
    return sorted({(e.dst, e.src) for e in view.edges})


def render_mermaid(view: EnvView, highlight: set[str] | None = None) -> str:
    lines = ["flowchart LR"]
    for key in lineage_keys(view):
        kind, name = key.split("/", 1)
        a, b = _SHAPES.get(kind, ("[", "]"))
        lines.append(f'  {node_id(key)}{a}"{_label(kind)}: {_label(name)}"{b}')
    for src, dst in lineage_edges(view):
        lines.append(f"  {node_id(src)} --> {node_id(dst)}")
    if highlight:
        lines.append("  classDef changed fill:#fde68a,stroke:#b45309")
        for key in sorted(highlight & set(view.nodes)):
            lines.append(f"  class {node_id(key)} changed")
    return "\n".join(lines) + "\n"


def render_dot(view: EnvView) -> str:
    shapes = {"Dataset": "cylinder", "Model": "box", "Prompt": "note", "EvalGate": "diamond",
              "ServingTarget": "ellipse", "Monitor": "hexagon"}
    lines = [f'digraph "{view.name}" {{', "  rankdir=LR;"]
    for key in lineage_keys(view):
        kind, name = key.split("/", 1)
        lines.append(f'  "{key}" [label="{kind}\\n{name}", shape={shapes.get(kind, "box")}];')
    for src, dst in lineage_edges(view):
        lines.append(f'  "{src}" -> "{dst}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_graph(view: EnvView, fmt: str) -> str:
    return render_dot(view) if fmt == "dot" else render_mermaid(view)
