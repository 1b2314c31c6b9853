"""JSON Schema of the spec language, from the pydantic models.

One schema per kind plus `specops.schema.json`, a single self-contained file for
yaml-language-server that picks the kind's schema by the document's `kind`. Committed under
compiler/schemas/ (shipped as package data); a test keeps it current.
"""

from __future__ import annotations

import json
from typing import Any

from specops.specs import KINDS, document_model

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://specops.dev/schemas/v1alpha1"


def kind_schema(kind: str) -> dict[str, Any]:
    s = document_model(kind).model_json_schema(by_alias=True)
    return {"$schema": DRAFT, "$id": f"{BASE_ID}/{kind.lower()}.schema.json", **s}


def _prefix_refs(node: Any, kind: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                out[k] = f"#/$defs/{kind}__{v[len('#/$defs/'):]}"
            else:
                out[k] = _prefix_refs(v, kind)
        return out
    if isinstance(node, list):
        return [_prefix_refs(v, kind) for v in node]
    return node


def combined() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    branches = []
    for kind in KINDS:
        s = document_model(kind).model_json_schema(by_alias=True)
        for name, d in s.pop("$defs", {}).items():
            defs[f"{kind}__{name}"] = _prefix_refs(d, kind)
        defs[kind] = _prefix_refs(s, kind)
        branches.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                         "then": {"$ref": f"#/$defs/{kind}"}})
    return {
        "$schema": DRAFT,
        "$id": f"{BASE_ID}/specops.schema.json",
        "title": "specops spec document",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"kind": {"enum": list(KINDS)}},
        "allOf": branches,
        "$defs": defs,
    }


def _dumps(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def combined_schema() -> str:
    return _dumps(combined()).decode()


def schema_files() -> dict[str, bytes]:
    files = {f"{k.lower()}.schema.json": _dumps(kind_schema(k)) for k in KINDS}
    files["specops.schema.json"] = _dumps(combined())
    return files
