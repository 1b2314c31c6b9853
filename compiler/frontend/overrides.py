"""Per-environment views of a repo: overrides deep-merged, positions kept.

A document's `overrides: {<env>: <partial spec>}` is deep-merged over its `spec` in that
environment: mappings merge key by key, anything else (lists, scalars, null) replaces. The
merged document is validated again with the kind's model, and every merged value keeps the
position of the text that supplied it, so an override error points at the override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specops.diagnostics import Diagnostic, Pos
from specops.frontend.loader import Repo, Spec, mark_invalid
from specops.frontend.validation import validate_document, validate_spec
from specops.frontend.yamlio import YamlDoc


def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


class MergedDoc(YamlDoc):
    """A document with one environment's overrides merged in. Its positions are the original
    document's, except that paths under `overrides.<env>` are moved onto `spec`, so an error
    in an overridden value points at the override; each is looked up when asked for."""

    __slots__ = ("_origin", "_env")

    def __init__(self, origin: YamlDoc, env: str, data: Any):
        super().__init__(origin.file, origin.index, data)
        self._origin, self._env = origin, env

    @property
    def start(self) -> Pos:
        return self._origin.start

    def position(self, path: tuple, key: bool = False) -> Pos | None:
        o = self._origin
        if len(path) > 1 and path[0] == "spec":
            moved = o.position(("overrides", self._env) + tuple(path[1:]), key)
            if moved is not None:
                return moved
        return o.position(path, key)

    def _ensure(self) -> None:
        # `keys` and `values` whole (rarely wanted: `position` answers one path).
        if self._keys is not None:
            return
        o = self._origin
        keys, values = dict(o.keys), dict(o.values)
        prefix = ("overrides", self._env)
        n = len(prefix)
        for src, dst in ((o.keys, keys), (o.values, values)):
            for path, pos in src.items():
                if path[:n] == prefix and len(path) > n:
                    dst[("spec",) + path[n:]] = pos
        self._keys, self._values, self._start = keys, values, o.start


def _merged_doc(doc: YamlDoc, env: str) -> YamlDoc:
    data = dict(doc.data)
    data["spec"] = deep_merge(doc.data.get("spec", {}), doc.data["overrides"][env])
    return MergedDoc(doc, env, data)


@dataclass(slots=True)
class Node:
    """A spec as it is in one environment."""

    kind: str
    name: str
    spec: Any  # the validated `spec` model, overrides applied
    doc: YamlDoc  # positions of the effective document
    origin: Spec
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def file(self) -> str:
        return self.doc.file


def env_nodes(repo: Repo, env: str) -> tuple[dict[str, Node], list[Diagnostic]]:
    """Every non-Project spec as it is in `env`, keyed 'Kind/name'."""
    nodes: dict[str, Node] = {}
    diags: list[Diagnostic] = []
    for s in repo.specs:
        if s.kind == "Project" or (s.model.environments is not None and env not in s.model.environments):
            continue
        spec, doc = s.model.spec, s.doc
        if env in s.model.overrides:
            doc = _merged_doc(s.doc, env)
            # Only `spec` differs from the document that validated whole at load (overrides
            # merge into it alone), so only it is validated again; an invalid one is validated
            # whole for the diagnostics, at the override's positions, as before.
            spec = validate_spec(s.kind, doc.data["spec"])
            if spec is None:
                model, dd = validate_document(doc)
                diags.extend(dd)
                if model is None:
                    mark_invalid(repo, doc.data)
                    continue
                spec = model.spec
        nodes.setdefault(s.key, Node(s.kind, s.name, spec, doc, s, dict(s.model.metadata.labels)))
    return nodes, diags


def effective_document(node: Node) -> dict[str, Any]:
    """The document as `specops render` prints it: overrides applied, defaults filled."""
    spec = node.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    meta = node.origin.model.metadata.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"apiVersion": node.origin.model.api_version, "kind": node.kind, "metadata": meta, "spec": spec}
