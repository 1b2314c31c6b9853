"""Resolution: references, duplicates, cycles and semantic checks, per environment.

Input: a loaded `Repo`. Output: a `Resolved` repo — the Project, and per environment the
effective nodes and the reference edges between them (the lineage graph) — plus diagnostics,
each at the spec position that caused it.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from specops.diagnostics import Diagnostic, Diagnostics, suggestion
from specops.frontend.loader import Repo
from specops.frontend.overrides import Node, env_nodes
from specops.resolve.lineage import made_inside, producer_step_kind


@dataclass(frozen=True, slots=True)
class Edge:
    """`src` refers to `dst` through the field at `path` (the lineage graph's edges)."""

    src: str  # "Kind/name"
    dst: str
    path: tuple


@dataclass
class EnvView:
    name: str
    env: Any  # specs.project.Environment
    target_name: str
    target: Any  # specs.project.Target
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    # Indexes the later stages derive from this view once (its nodes do not change after
    # resolve): e.g. lower's gates per model, which a scan per model made quadratic.
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def _by_kind(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in sorted(self.nodes.values(), key=lambda n: n.name):
            out.setdefault(n.kind, []).append(n)
        return out

    def of_kind(self, kind: str) -> list[Node]:
        return self._by_kind.get(kind, [])

    @cached_property
    def _reverse(self) -> dict[str, list[str]]:
        rev: dict[str, set[str]] = {}
        for e in self.edges:
            rev.setdefault(e.dst, set()).add(e.src)
        return {k: sorted(v) for k, v in rev.items()}

    @cached_property
    def _forward(self) -> dict[str, list[str]]:
        fwd: dict[str, list[str]] = {}
        for e in self.edges:
            fwd.setdefault(e.src, []).append(e.dst)
        return fwd

    def referrers(self, key: str) -> list[str]:
        """Keys of the nodes whose references point at `key` (reverse lineage edges)."""
        return self._reverse.get(key, [])

    def references(self, key: str) -> list[str]:
        return self._forward.get(key, [])

    def get(self, kind: str, name: str) -> Node | None:
        return self.nodes.get(f"{kind}/{name}")


@dataclass
class Resolved:
    repo: Repo
    project: Any  # specs.project.ProjectSpec
    project_name: str
    envs: dict[str, EnvView]
    diagnostics: Diagnostics
    # What the checks learn once per run and ask again per environment (e.g. where a
    # repo-relative path resolves): keyed by the asking check.
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


# (kind, path pattern, referenced kind). "*" in a path iterates a list.
REFERENCES: list[tuple[str, tuple, str]] = [
    ("Model", ("datasets", "*", "dataset"), "Dataset"),
    ("Model", ("llm", "base", "fromModel"), "Model"),
    ("Prompt", ("model",), "Model"),
    ("EvalGate", ("model",), "Model"),
    ("EvalGate", ("prompt",), "Prompt"),
    ("EvalGate", ("dataset",), "Dataset"),
    ("Dataset", ("checks", "*", "dataset"), "Dataset"),
    ("ServingTarget", ("model",), "Model"),
    ("ServingTarget", ("adapters", "*"), "Model"),
    ("ServingTarget", ("gates", "*"), "EvalGate"),
    ("Monitor", ("watch", "model"), "Model"),
    ("Monitor", ("watch", "inputs", "dataset"), "Dataset"),
    ("Monitor", ("watch", "reference", "dataset"), "Dataset"),
    ("Monitor", ("watch", "feedback", "dataset"), "Dataset"),
    ("Monitor", ("watch", "traffic", "dataset"), "Dataset"),
    ("Monitor", ("watch", "serving"), "ServingTarget"),
    # Lineage through datasets: a Dataset made by a model's step, the datasets a model's custom
    # steps and batch scoring read ("{}" iterates a mapping's values; a step input holding a
    # '.' wires another step's output, checked by checks.lineage).
    ("Dataset", ("producedBy", "model"), "Model"),
    ("Model", ("steps", "*", "inputs", "{}"), "Dataset"),
    ("Model", ("steps", "*", "inputs", "{}", "from"), "Dataset"),
    ("Model", ("batch", "*", "dataset"), "Dataset"),
]


# REFERENCES by referring kind, in their order: each node reads only its own kind's rows.
_REFERENCES_OF: dict[str, list[tuple[tuple, str]]] = {}
for _kind, _pattern, _target in REFERENCES:
    _REFERENCES_OF.setdefault(_kind, []).append((_pattern, _target))


def _walk(data: Any, pattern: tuple, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, value) of every place `pattern` reaches in `data`, depth first in document order."""
    out: list[tuple[tuple, Any]] = []
    _walk_into(data, pattern, 0, prefix, out)
    return out


def _walk_into(data: Any, pattern: tuple, i: int, prefix: tuple, out: list) -> None:
    # A list filled by plain recursion, not nested generators: this runs for every reference
    # pattern of every node of every environment (~120,000 calls at 10,000 specs).
    while i < len(pattern):
        head = pattern[i]
        if head == "*":
            if isinstance(data, list):
                for j, item in enumerate(data):
                    _walk_into(item, pattern, i + 1, prefix + (j,), out)
            return
        if head == "{}":
            if isinstance(data, dict):
                for key, item in data.items():
                    _walk_into(item, pattern, i + 1, prefix + (key,), out)
            return
        if not isinstance(data, dict) or head not in data:
            return
        data = data[head]
        prefix = prefix + (head,)
        i += 1
    out.append((prefix, data))


def _at(node: Node, path: tuple, severity: str, code: str, msg: str, notes: tuple[str, ...] = ()) -> Diagnostic:
    return Diagnostic(severity, code, msg, node.file, node.doc.pos_of(("spec",) + path), notes)  # type: ignore[arg-type]


def _references(node: Node) -> list[tuple[str, str, Edge]]:
    """(referenced kind, value, edge if it resolves) of every reference `node`'s document
    makes, in REFERENCES order: what _check_refs looks up in each environment."""
    kind, key = node.kind, node.key
    spec_data = node.doc.data.get("spec", {})
    found = []
    for pattern, target_kind in _REFERENCES_OF[kind]:
        for path, value in _walk(spec_data, pattern):
            if not isinstance(value, str) or (pattern[0] == "steps" and "." in value):
                continue
            if kind == target_kind == "Dataset" and value == node.name:
                continue  # a dataset's check may reference its own key (a parent id): no edge
            found.append((target_kind, value, Edge(key, f"{target_kind}/{value}", path)))
    return found


def _check_refs(repo: Repo, view: EnvView, out: Diagnostics, memo: dict[Any, list] | None = None) -> None:
    """Resolve every reference of `view`'s nodes into its edges, reporting those that do not.
    `memo`: what _references found per document, for the next environment (most documents
    are the same object in every environment; the edges are frozen, so shared)."""
    memo = {} if memo is None else memo
    nodes = view.nodes
    edges = view.edges
    # Wanted only for a reference that misses: built at the first one.
    declared: set[str] | None = None
    names_by_kind: dict[str, list[str]] | None = None
    # Sorted by key: `nodes` is keyed by each node's key (env_nodes), and keys are unique.
    for key, node in sorted(nodes.items()):
        kind = node.kind
        if kind not in _REFERENCES_OF:
            continue
        found = memo.get(node.doc)  # a YamlDoc hashes by identity
        if found is None:
            found = memo[node.doc] = _references(node)
        for target_kind, value, edge in found:
            dst = edge.dst
            if dst in nodes:
                edges.append(edge)
                continue
            path = edge.path
            if dst in repo.invalid or value in repo.unparsed_names:
                continue  # already reported where it is defined
            if declared is None:
                declared = {s.key for s in repo.specs}
            if kind == "Monitor" and target_kind == "ServingTarget" and dst in declared:
                # Deployed in other environments only: nothing to watch here, which is no error.
                out.add(_at(node, path, "warning", "monitor",
                            f"ServingTarget '{value}' is not deployed in environment '{view.name}': this "
                            "monitor's serving SLOs are not compiled there"))
                continue
            if names_by_kind is None:
                names_by_kind = {}
                for n in nodes.values():
                    names_by_kind.setdefault(n.kind, []).append(n.name)
            other = [k for k, names in names_by_kind.items() if value in names]
            if other:
                out.add(_at(node, path, "error", "wrong-kind-ref",
                            f"'{value}' is a {other[0]}, but {'.'.join(map(str, path))} needs a {target_kind}"))
            else:
                invalid = [k.split("/", 1)[1] for k in repo.invalid if k.startswith(target_kind + "/")]
                out.add(_at(node, path, "error", "unresolved-ref",
                            f"unknown {target_kind} '{value}'"
                            + suggestion(value, names_by_kind.get(target_kind, []) + invalid)))


def _check_cycles(view: EnvView, out: Diagnostics) -> None:
    """One error per cycle (graphlib finds them, iteratively: a 10,000-spec chain cannot hit
    the recursion limit), at the reference that closes it: the one pointing back at the
    cycle's smallest key. That edge is then set aside and the search goes on."""
    kept = [e for e in view.edges if not _made_for_itself(view, e)]
    if _acyclic(kept):
        return  # the usual case, told by a plain Kahn pass (graphlib's search cost 4x more at 10k)
    edges: dict[tuple[str, str], Edge] = {}
    for e in sorted(kept, key=lambda e: (e.src, e.dst, e.path)):
        edges.setdefault((e.src, e.dst), e)
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, set()).add(dst)
    while True:
        try:
            graphlib.TopologicalSorter({k: sorted(v) for k, v in sorted(graph.items())}).prepare()
            return
        except graphlib.CycleError as err:
            found = list(reversed(err.args[1]))[:-1]  # each key references the next one
        i = found.index(min(found))
        cycle = found[i:] + found[:i]  # start at the smallest key
        closing = edges[(cycle[-1], cycle[0])]
        chain = " -> ".join(cycle + [cycle[0]])
        out.add(_at(view.nodes[closing.src], closing.path, "error", "cycle", f"reference cycle: {chain}"))
        graph[closing.src].discard(closing.dst)


def _acyclic(edges: list[Edge]) -> bool:
    """Whether the edges make no cycle: Kahn's algorithm, every node's references counted
    down as the nodes nothing (else) refers to are taken away."""
    out: dict[str, set[str]] = {}
    for e in edges:
        out.setdefault(e.src, set()).add(e.dst)
    indeg: dict[str, int] = {}
    for dsts in out.values():
        for d in dsts:
            indeg[d] = indeg.get(d, 0) + 1
    ready = [n for n in out if n not in indeg]
    while ready:
        for d in out.get(ready.pop(), ()):
            left = indeg[d] - 1
            indeg[d] = left
            if not left:
                ready.append(d)
    return not any(indeg.values())


def _made_for_itself(view: EnvView, e: Edge) -> bool:
    """A Dataset's producedBy edge to a model that makes it before training and trains on it:
    lineage inside one pipeline (prep -> transform -> check -> train), not a cycle."""
    if e.path != ("producedBy", "model") or not e.src.startswith("Dataset/"):
        return False
    ds, model = view.nodes.get(e.src), view.nodes.get(e.dst)
    if ds is None or model is None:
        return False
    # A step the model does not have is reported by the lineage checks, not as a cycle.
    return made_inside(ds, model) or producer_step_kind(model, ds.spec.produced_by.step) is None


def _check_duplicates(repo: Repo, out: Diagnostics) -> None:
    seen: dict[str, Any] = {}
    for s in repo.specs:
        first = seen.get(s.key)
        if first is None:
            seen[s.key] = s
            continue
        out.add(Diagnostic("error", "duplicate-name",
                           f"{s.kind} '{s.name}' is already defined at {first.file}:{first.doc.pos_of(('metadata', 'name')).line}",
                           s.file, s.doc.pos_of(("metadata", "name"))))


def resolve(repo: Repo, only_envs: list[str] | None = None) -> Resolved:
    """Resolve every environment, or only `only_envs` (names the Project must declare)."""
    out = Diagnostics(list(repo.diagnostics.items))
    proj_spec = repo.project()
    if proj_spec is None:
        return Resolved(repo, None, "", {}, out)
    project = proj_spec.model.spec
    _check_duplicates(repo, out)
    env_names = sorted(project.environments)

    # Environments must name declared targets; overrides must name declared environments.
    pdoc = proj_spec.doc
    for env_name, env in project.environments.items():
        if env.target not in project.targets:
            out.add(Diagnostic("error", "unknown-target",
                               f"environment '{env_name}' names unknown target '{env.target}'"
                               + suggestion(env.target, project.targets),
                               pdoc.file, pdoc.pos_of(("spec", "environments", env_name, "target"))))
    for nname, notifier in project.notifications.items():
        for i, env_name in enumerate(notifier.environments):
            if env_name not in project.environments:
                out.add(Diagnostic("error", "unknown-env", f"notifier '{nname}' names unknown environment '{env_name}'"
                                   + suggestion(env_name, env_names),
                                   pdoc.file, pdoc.pos_of(("spec", "notifications", nname, "environments", i))))
    for s in repo.specs:
        if s.kind == "Project":
            # The envelope allows placement on every kind, but a Project is every
            # environment's: these would be read by nothing, so they are refused where written.
            for key in ("environments", "overrides"):
                if key in s.doc.data:
                    out.add(Diagnostic("error", "unsupported",
                                       f"a Project belongs to every environment: `{key}` is not read here; "
                                       "per-environment settings go under spec.environments.<env>",
                                       s.file, s.doc.pos_of((key,), prefer_key=True)))
            continue
        for i, env_name in enumerate(getattr(s.model, "environments", None) or []):
            if env_name not in project.environments:
                out.add(Diagnostic("error", "unknown-env", f"unknown environment '{env_name}'"
                                   + suggestion(env_name, env_names), s.file, s.doc.pos_of(("environments", i))))
        for env_name in s.model.overrides:
            if env_name not in project.environments:
                out.add(Diagnostic("error", "unknown-env", f"overrides name unknown environment '{env_name}'"
                                   + suggestion(env_name, env_names),
                                   s.file, s.doc.pos_of(("overrides", env_name), prefer_key=True)))

    envs: dict[str, EnvView] = {}
    references: dict[Any, list] = {}  # _check_refs's memo, across environments
    for env_name in env_names:
        if only_envs and env_name not in only_envs:
            continue
        env = project.environments[env_name]
        nodes, dd = env_nodes(repo, env_name)
        out.extend(dd)
        view = EnvView(env_name, env, env.target, project.targets.get(env.target), nodes)
        _check_refs(repo, view, out, references)
        _check_cycles(view, out)
        envs[env_name] = view
    return Resolved(repo, project, proj_spec.name, envs, out)
