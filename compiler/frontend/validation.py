"""Validate one YAML document against its kind's model; map pydantic errors to positions.

Pydantic's `loc` mixes data keys with union-member and discriminator names; we walk it along
the actual data so every error lands on the key or value the user wrote. Unknown keys get a
"did you mean" from the keys the schema allows at that exact place (read from the kind's
JSON Schema, which already knows unions, aliases and nesting).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from specops.diagnostics import CODES, Diagnostic, suggestion
from specops.frontend.yamlio import YamlDoc
from specops.specs import KINDS, document_model

API_VERSION = "specops.dev/v1alpha1"

_TYPE_NAMES = {
    "string_type": "a string", "int_type": "an integer", "float_type": "a number",
    "bool_type": "true or false", "dict_type": "a mapping", "list_type": "a list",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "int_from_float": "an integer",
    "int_parsing": "an integer", "float_parsing": "a number", "bool_parsing": "true or false",
    "string_sub_type": "a string",
}


def _yaml_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def _data_path(data: Any, loc: tuple) -> tuple[tuple, bool]:
    """Project a pydantic loc onto the data: (path, is_key_error)."""
    path: list = []
    cur = data
    is_key = False
    fresh = True  # just descended: a discriminated union's tag may come next
    for item in loc:
        if item == "[key]":
            is_key = True
            continue
        if fresh and isinstance(cur, dict) and isinstance(item, str) and cur.get("type") == item:
            # The union tag pydantic inserts (`spec.classical.…` for `type: classical`),
            # even when a field of the same name exists.
            fresh = False
            continue
        fresh = True
        if isinstance(cur, dict) and isinstance(item, str) and item in cur:
            path.append(item)
            cur = cur[item]
        elif isinstance(cur, list) and isinstance(item, int) and 0 <= item < len(cur):
            path.append(item)
            cur = cur[item]
        elif isinstance(cur, dict) and isinstance(item, str) and item == loc[-1]:
            # A missing or unknown field: keep its name as the last path element.
            path.append(item)
            cur = None
        else:
            fresh = False
    return tuple(path), is_key


@cache
def _schema(kind: str) -> dict:

    return document_model(kind).model_json_schema(by_alias=True)


def _resolve(node: dict, root: dict) -> list[dict]:
    """Follow $ref and expand anyOf/oneOf/allOf into the list of concrete branches."""
    out: list[dict] = []
    todo = [node]
    while todo:
        n = todo.pop()
        if "$ref" in n:
            todo.append(root["$defs"][n["$ref"].rsplit("/", 1)[-1]])
            continue
        branches = n.get("anyOf") or n.get("oneOf") or n.get("allOf")
        if branches:
            todo.extend(branches)
            continue
        out.append(n)
    return out


def allowed_keys(kind: str, data: Any, path: tuple) -> list[str]:
    """Keys the schema allows in the mapping at `path` of a document of `kind`."""
    root = _schema(kind)
    nodes = [root]
    cur = data
    for item in path:
        nxt: list[dict] = []
        for n in nodes:
            for b in _resolve(n, root):
                if isinstance(item, int):
                    if isinstance(b.get("items"), dict):
                        nxt.append(b["items"])
                elif item in b.get("properties", {}):
                    nxt.append(b["properties"][item])
                elif isinstance(b.get("additionalProperties"), dict):
                    nxt.append(b["additionalProperties"])
        nodes = nxt
        cur = cur.get(item) if isinstance(cur, dict) else (cur[item] if isinstance(cur, list) and isinstance(item, int) and item < len(cur) else None)
    keys: set[str] = set()
    for n in nodes:
        for b in _resolve(n, root):
            props = b.get("properties", {})
            # Discriminated unions: only the branch whose `type` const matches the data.
            tconst = props.get("type", {}).get("const")
            if tconst is not None and isinstance(cur, dict) and cur.get("type") not in (None, tconst):
                continue
            keys.update(props)
    return sorted(keys)


def _message(kind: str, doc: YamlDoc, err: dict, path: tuple) -> tuple[str, str, bool]:
    """(code, message, prefer_key) for one pydantic error."""
    etype = err["type"]
    field = next((p for p in reversed(path) if isinstance(p, str)), "value")
    inp = err.get("input")
    ctx = err.get("ctx") or {}
    if etype == "extra_forbidden":
        parent = path[:-1]
        return ("unknown-field", f"unknown field '{field}'" + suggestion(field, allowed_keys(kind, doc.data, parent)), True)
    if etype == "missing":
        return ("missing-field", f"missing required field '{field}'", True)
    if etype in CODES:  # our own PydanticCustomError types carry the diagnostic code
        return (etype, err["msg"], False)
    if etype == "literal_error":
        expected = ctx.get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",") if c.strip()]
        got = f"'{inp}'" if isinstance(inp, str) else repr(inp)
        hint = suggestion(str(inp), choices) if isinstance(inp, str) else ""
        return ("value", f"invalid {field} {got}; expected {expected}{hint}", False)
    if etype in ("union_tag_invalid",):
        tags = ctx.get("expected_tags", "")
        tag = ctx.get("tag", "")
        choices = [t.strip().strip("'") for t in tags.split(",")]
        return ("value", f"invalid {ctx.get('discriminator', 'type').strip(chr(39))} '{tag}'; expected one of {tags}"
                + suggestion(str(tag), choices), False)
    if etype == "union_tag_not_found":
        return ("missing-field", f"missing required field {ctx.get('discriminator', 'type')}", True)
    if etype in _TYPE_NAMES:
        want = _TYPE_NAMES[etype]
        got = _yaml_type(inp)
        hint = ""
        if want == "a string" and isinstance(inp, (int, float, bool)):
            hint = f" (YAML read `{str(inp).lower() if isinstance(inp, bool) else inp}` as {got}; quote it)"
        return ("type", f"'{field}' must be {want}, not {got}{hint}", False)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return ("value", f"'{field}': {msg[0].lower() + msg[1:] if msg else msg}", False)


# One set object per distinct set of fields given: see _share_fields_sets.
_FIELDS_SETS: dict[frozenset, set] = {}


# Per model class, the shared set its last instance got (a fast path into _FIELDS_SETS).
_LAST_SET: dict[type, set] = {}


# Values with no models inside: not walked.
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _may_hold_model(ann: Any) -> bool:
    """Whether a value of annotation `ann` can be or contain a pydantic model: only where the
    annotation names a model class does validation make one (Any keeps plain data). Anything
    not understood counts as yes (walked, as before)."""
    if isinstance(ann, type) and not get_args(ann):
        return issubclass(ann, BaseModel) or ann in (object,)
    if ann is Any:
        return False
    origin = get_origin(ann)
    if origin is Literal:
        return False
    if origin is None:
        return True  # a string or ForwardRef, a TypeVar...: not understood
    return any(_may_hold_model(a) for a in get_args(ann) if not _is_metadata(a))


def _is_metadata(a: Any) -> bool:
    # Annotated[...]'s extra arguments (FieldInfo, validators, strings): not types.
    return not (isinstance(a, type) or get_origin(a) is not None or a is Any or a is None)


def _class_info(cls: type) -> tuple[bool, tuple[str, ...]]:
    """For the walk below: whether `cls` is a frozen model (every spec model; a mutable one
    would add to a shared set), and its fields whose values can hold models, so that the rest
    (names, numbers, lists of strings) are skipped without a look. (False, ()) for anything
    that is not a model."""
    if not issubclass(cls, BaseModel):
        return False, ()
    return (bool(cls.model_config.get("frozen")),
            tuple(name for name, f in cls.model_fields.items() if _may_hold_model(f.annotation)))


_CLASS_INFO: dict[type, tuple[bool, tuple[str, ...]]] = {}


def _share_fields_sets(model: BaseModel) -> None:
    """Point every (sub)model's `model_fields_set` at one shared set per distinct value. Each
    model instance gets its own set from pydantic, and those sets were a third of a spec
    model's memory (every Column, Metadata, Check... holds one); the spec models are frozen,
    so nothing adds to them (model_copy copies the set first)."""
    sets = _FIELDS_SETS
    last = _LAST_SET
    infos = _CLASS_INFO
    todo: list = [model]
    push = todo.append
    while todo:
        m = todo.pop()
        t = type(m)
        if t is list or t is tuple:
            for x in m:
                if type(x) not in _LEAVES:
                    push(x)
        elif t is dict:
            for x in m.values():
                if type(x) not in _LEAVES:
                    push(x)
        else:
            info = infos.get(t)
            if info is None:
                info = infos[t] = _class_info(t)
            frozen, names = info
            if frozen:
                fs = m.__pydantic_fields_set__
                # Most models of a class give the same fields as the last one: comparing with
                # that set is cheaper than making and hashing a frozenset for the table.
                shared = last.get(t)
                if shared is None or shared != fs:
                    shared = last[t] = sets.setdefault(frozenset(fs), fs)
                object.__setattr__(m, "__pydantic_fields_set__", shared)
            if names:
                d = m.__dict__
                for name in names:
                    x = d[name]
                    if type(x) not in _LEAVES:
                        push(x)


def validate_spec(kind: str, data: Any) -> Any | None:
    """The `spec` block alone validated with its kind's model, or None when it is invalid:
    for a document whose envelope has validated already and whose spec an override changed.
    The caller asks validate_document for the diagnostics of an invalid one."""
    try:
        # Through the document model, under a stand-in envelope: its `spec` validator is the
        # one a whole document runs, and the spec classes are built lazily (defer_build) so
        # that no process builds a second validator (~20 ms per kind) for the same spec.
        doc = document_model(kind).model_validate(
            {"apiVersion": API_VERSION, "kind": kind, "metadata": _STAND_IN_METADATA, "spec": data})
    except ValidationError:
        return None
    spec = doc.spec
    _share_fields_sets(spec)
    return spec


_STAND_IN_METADATA = {"name": "x"}


def validate_document(doc: YamlDoc) -> tuple[Any | None, list[Diagnostic]]:

    data = doc.data
    if not isinstance(data, dict):
        return None, [Diagnostic("error", "envelope", "a spec document must be a mapping with apiVersion, "
                                 "kind, metadata and spec", doc.file, doc.start)]
    api = data.get("apiVersion")
    if api != API_VERSION:
        where = doc.pos_of(("apiVersion",)) if "apiVersion" in data else doc.start
        msg = (f"apiVersion must be '{API_VERSION}'" + (f", not '{api}'" if api is not None else
               "; this file is not a specops spec (list it in .specopsignore if it is not one)"))
        return None, [Diagnostic("error", "envelope", msg, doc.file, where)]
    kind = data.get("kind")
    if kind not in KINDS:
        where = doc.pos_of(("kind",)) if "kind" in data else doc.start
        return None, [Diagnostic("error", "unknown-kind", f"unknown kind {kind!r}; expected one of "
                                 f"{', '.join(KINDS)}" + suggestion(str(kind), KINDS), doc.file, where)]
    try:
        model = document_model(kind).model_validate(data)
        _share_fields_sets(model)
        return model, []
    except ValidationError as e:
        found = []
        for err in e.errors(include_url=False):
            path, is_key = _data_path(data, err["loc"])
            if err["type"] == "union_tag_invalid":
                # Point at the discriminator's value, not the whole mapping.
                path = path + (str((err.get("ctx") or {}).get("discriminator", "type")).strip("'"),)
            code, msg, prefer_key = _message(kind, doc, err, path)
            found.append((path, code, msg, prefer_key or is_key))
        # A misspelled required key is one mistake: keep "unknown field 'x'; did you mean 'y'"
        # and drop "missing required field 'y'" at the same place.
        suggested = {(p[:-1], m.rsplit("did you mean '", 1)[1].split("'")[0])
                     for p, c, m, _ in found if c == "unknown-field" and "did you mean '" in m}
        out = [Diagnostic("error", c, m, doc.file, doc.pos_of(p, k))  # type: ignore[arg-type]
               for p, c, m, k in found if not (c == "missing-field" and (p[:-1], p[-1] if p else None) in suggested)]
        return None, out
