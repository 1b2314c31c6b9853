"""The one structural diff engine, shared by `diff` (compiled artifacts between two git refs),
`plan` (recorded state against desired) and `drift` (recorded state against live).

Changes are field paths in document order: `dag.tasks.train.inputs`, `containers[name=vllm]
.args`. Lists of named objects pair up by name, so inserting one item does not report every
later item as changed; JSON carried inside a string (KFP parameter constants, env vars) is
diffed by its fields; multi-line strings also carry a unified text diff. Standard library
plus PyYAML's C loader for YAML documents.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Literal

import yaml

MAX_TEXT_LINES = 400

Op = Literal["changed", "added", "removed"]


@dataclass(frozen=True)
class FieldDiff:
    """One change: `path` is "<file>:<field path>" between attribute maps ({file: data}) and
    the bare field path between two documents."""

    path: str
    before: Any
    after: Any
    op: Op = "changed"
    text: tuple[str, ...] = ()  # unified diff lines of a multi-line string

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "op": self.op, "before": self.before, "after": self.after}
        if self.text:
            out["text"] = list(self.text)
        return out


def parse_document(name: str, data: bytes) -> tuple[str, Any]:
    """('json' | 'yaml', value) for a file that parses (multi-document YAML as a list), else
    ('text', str)."""
    text = data.decode("utf-8", "replace")
    try:
        if name.endswith(".json"):
            return "json", json.loads(text)
        if name.endswith((".yaml", ".yml")):
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            docs = list(yaml.load_all(text, Loader=loader))
            return "yaml", docs[0] if len(docs) == 1 else docs
    except (ValueError, yaml.YAMLError):  # a file that does not parse (a hand edit) is compared as text
        pass
    return "text", text


def _key_seg(k: Any) -> str:
    k = str(k)
    if k and all(c.isalnum() or c in "_-" for c in k):
        return f".{k}"
    return f"[{json.dumps(k)}]"


def _named(items: list) -> tuple[str, dict] | None:
    # Lists of named objects (containers, env vars, steps, CloudWatch alarms) are matched by name.
    if not items or not all(isinstance(x, dict) for x in items):
        return None
    for field_ in ("name", "Name", "id", "AlarmName"):
        names = [x.get(field_) for x in items]
        if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
            return field_, {n: x for n, x in zip(names, items)}
    return None


def _has_structure(items: list) -> bool:
    # A list of plain values (labels, argv) reads best as one change: ["a"] -> ["b", "a"].
    return any(isinstance(x, (dict, list)) for x in items)


def _keyed(old: dict, new: dict, seg: Any, path: str) -> list[FieldDiff]:
    """Removed / added / recursively changed entries of two keyed collections, old order first."""
    out: list[FieldDiff] = []
    for k in list(old) + [k for k in new if k not in old]:
        p = path + seg(k)
        if k not in new:
            out.append(FieldDiff(p.lstrip("."), old[k], None, "removed"))
        elif k not in old:
            out.append(FieldDiff(p.lstrip("."), None, new[k], "added"))
        else:
            out.extend(structural_diff(old[k], new[k], p))
    return out


def structural_diff(old: Any, new: Any, path: str = "") -> list[FieldDiff]:
    """Field-level changes between two documents, in document order."""
    if isinstance(old, dict) and isinstance(new, dict):
        return _keyed(old, new, _key_seg, path)
    if isinstance(old, list) and isinstance(new, list) and (_has_structure(old) or _has_structure(new)):
        a, b = _named(old), _named(new)
        if a is not None and b is not None and a[0] == b[0]:
            return _keyed(a[1], b[1], lambda n: f"[{a[0]}={n}]", path)
        return _keyed(dict(enumerate(old)), dict(enumerate(new)), lambda i: f"[{i}]", path)
    if isinstance(old, str) and isinstance(new, str) and old != new:
        a, b = _json_in_string(old), _json_in_string(new)
        if a is not None and b is not None:
            return structural_diff(a, b, path + "<json>")
    if old != new or type(old) is not type(new):
        text: tuple[str, ...] = ()
        if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
            text = tuple(text_diff(old, new))
        return [FieldDiff(path.lstrip(".") or "(document)", old, new, "changed", text)]
    return []


def file_diffs(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldDiff]:
    """Per-file changes between two attribute maps ({file: parsed data}); paths "<file>:<path>"."""
    before, after = before or {}, after or {}
    out: list[FieldDiff] = []
    for f in sorted(set(before) | set(after)):
        if f not in before:
            out.append(FieldDiff(f"{f}:", None, "(file)", "added"))
        elif f not in after:
            out.append(FieldDiff(f"{f}:", "(file)", None, "removed"))
        else:
            out.extend(FieldDiff(f"{f}:{x.path if x.path != '(document)' else ''}", x.before, x.after, x.op, x.text)
                       for x in structural_diff(before[f], after[f]))
    return out


def _json_in_string(s: str) -> Any:
    if not s.startswith(("{", "[")):
        return None
    try:
        v = json.loads(s)
    except ValueError:
        return None
    return v if isinstance(v, (dict, list)) else None


def text_diff(old: str, new: str, name: str = "") -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{name}" if name else "old",
                                      f"b/{name}" if name else "new", n=2, lineterm=""))
    if len(lines) > MAX_TEXT_LINES:
        lines = lines[:MAX_TEXT_LINES] + [f"... {len(lines) - MAX_TEXT_LINES} more lines"]
    return lines
