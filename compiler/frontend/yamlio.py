"""Strict YAML with positions, fast.

Two paths give the same data:

- The fast path loads with libyaml's C parser (PyYAML's CSafeLoader) and a constructor that
  refuses duplicate and non-string keys. It keeps no positions: most files are valid and
  never need them. Files with anchors, aliases, tags or merge keys skip it, so alias bombs
  and custom tags never reach a constructor.
- The exact path composes nodes (libyaml first; ruamel.yaml's pure parser as a second
  opinion where libyaml is stricter, e.g. `{uri: hf://x/y}` in older builds) and walks them
  with our own strictness: duplicate keys, custom tags and non-string keys are errors and
  alias expansion is bounded, so a billion-laughs file fails in milliseconds. It records the
  line and column of every key and value.

A document's positions are computed on first use, by the exact path over the same bytes, so
only files that have a diagnostic pay for them.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import yaml

from specops.diagnostics import Diagnostic, Pos

MAX_FILE_BYTES = 1 << 20
# Nodes materialised per file, counting every alias expansion. Real spec files have a few
# hundred; a billion-laughs file reaches this within microseconds of walking.
MAX_NODES = 100_000
MAX_DEPTH = 64

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = {
    _STR, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp",
}

Path = tuple  # tuple[str | int, ...]


class YamlDoc:
    """One YAML document: plain data plus the position of every key and value by path."""

    __slots__ = ("file", "index", "data", "_start", "_keys", "_values", "_source")

    def __init__(self, file: str, index: int, data: Any, start: Pos | None = None,
                 keys: dict | None = None, values: dict | None = None, source: "_Source | None" = None):
        self.file = file
        self.index = index
        self.data = data
        self._start = start
        self._keys = keys
        self._values = values
        self._source = source

    def _ensure(self) -> None:
        if self._keys is None:
            exact = self._source.exact()[self.index] if self._source is not None else None
            if exact is None:
                self._keys, self._values, self._start = {}, {}, self._start or Pos(1, 1)
            else:
                self._keys, self._values, self._start = exact._keys, exact._values, exact._start

    @property
    def start(self) -> Pos:
        self._ensure()
        return self._start  # type: ignore[return-value]

    @property
    def keys(self) -> dict[Path, Pos]:
        """path -> position of the mapping key that holds the value at path"""
        self._ensure()
        return self._keys  # type: ignore[return-value]

    @property
    def values(self) -> dict[Path, Pos]:
        """path -> position of the value node at path"""
        self._ensure()
        return self._values  # type: ignore[return-value]

    def pos_of(self, path: Path, prefer_key: bool = False) -> Pos:
        """The position of `path`, or of its nearest ancestor that has one."""
        keys, values = self.keys, self.values
        p = tuple(path)
        while True:
            if prefer_key and p in keys:
                return keys[p]
            if p in values:
                return values[p]
            if p in keys:
                return keys[p]
            if not p:
                return self.start
            p = p[:-1]


class _Source:
    """The bytes of one file, to compute exact positions on demand (once)."""

    __slots__ = ("text", "file", "_exact")

    def __init__(self, text: str, file: str):
        self.text, self.file, self._exact = text, file, None

    def exact(self) -> list["YamlDoc | None"]:
        if self._exact is None:
            docs, _ = _parse_exact(self.text, self.file)
            self._exact = docs
        return self._exact


class _Fail(Exception):
    def __init__(self, code: str, message: str, pos: Pos):
        self.code, self.message, self.pos = code, message, pos


def _pos(mark: Any) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


def _span(node: Any) -> Pos:
    s, e = node.start_mark, node.end_mark
    return Pos(s.line + 1, s.column + 1, e.line + 1, e.column + 1)


def _tag(node: Any) -> str:
    t = node.tag
    return getattr(t, "value", t) if t is not None else ""


from yaml.constructor import SafeConstructor  # noqa: E402

_constructor = SafeConstructor()


def _show_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _scalar(node: Any) -> Any:
    tag = _tag(node)
    if tag == _STR:
        return node.value
    if tag not in _SCALAR_TAGS:
        raise _Fail("yaml-tag", f"unsupported YAML tag '{_show_tag(tag)}'; specs use plain YAML values", _pos(node.start_mark))
    pn = node if isinstance(node, yaml.ScalarNode) else yaml.ScalarNode(tag, node.value)
    value = _constructor.yaml_constructors[tag](_constructor, pn)
    if isinstance(value, _dt.datetime | _dt.date):
        # Dates stay strings: specs compare and emit them verbatim.
        return node.value
    return value


class _Walker:
    def __init__(self, doc: YamlDoc):
        doc._keys, doc._values = {}, {}
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()

    def walk(self, node: Any, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Fail("yaml-alias-limit",
                        f"document expands to more than {MAX_NODES} nodes (alias expansion bomb?)",
                        _pos(node.start_mark))
        if depth > MAX_DEPTH:
            raise _Fail("yaml-alias-limit", f"nesting deeper than {MAX_DEPTH} levels", _pos(node.start_mark))
        self.doc._values.setdefault(path, _span(node))
        kind = type(node).__name__
        if kind == "ScalarNode":
            return _scalar(node)
        nid = id(node)
        if nid in self.active:
            raise _Fail("yaml-alias-limit", "recursive alias", _pos(node.start_mark))
        self.active.add(nid)
        try:
            tag = _tag(node)
            if kind == "SequenceNode":
                if tag != _SEQ:
                    raise _Fail("yaml-tag", f"unsupported YAML tag '{_show_tag(tag)}'", _pos(node.start_mark))
                return [self.walk(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
            if tag != _MAP:
                raise _Fail("yaml-tag", f"unsupported YAML tag '{_show_tag(tag)}'", _pos(node.start_mark))
            return self._mapping(node, path, depth)
        finally:
            self.active.discard(nid)

    def _mapping(self, node: Any, path: Path, depth: int) -> dict:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for knode, vnode in node.value:
            if _tag(knode) == _MERGE:
                for src in (vnode.value if type(vnode).__name__ == "SequenceNode" else [vnode]):
                    val = self.walk(src, path, depth + 1)
                    if not isinstance(val, dict):
                        raise _Fail("yaml-syntax", "a merge key (<<) needs a mapping", _pos(src.start_mark))
                    for k, v in val.items():
                        merged.setdefault(k, v)
                continue
            if type(knode).__name__ != "ScalarNode":
                raise _Fail("yaml-key-type", "mapping keys must be plain strings", _pos(knode.start_mark))
            ktag = _tag(knode)
            if ktag not in _SCALAR_TAGS:
                raise _Fail("yaml-tag", f"unsupported YAML tag '{_show_tag(ktag)}'", _pos(knode.start_mark))
            # Keys are names, always strings: `on:`/`yes:` stay text, `200:` stays "200".
            key = knode.value
            if key in out:
                first = self.doc._keys[path + (key,)]
                raise _Fail("yaml-duplicate-key",
                            f"duplicate key '{key}' (first defined at line {first.line})", _span(knode))
            kpos = _span(knode)
            self.doc._keys[path + (key,)] = kpos
            out[key] = self.walk(vnode, path + (key,), depth + 1)
        for k, v in merged.items():
            out.setdefault(k, v)
        return out


def _decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise _Fail("yaml-too-large", f"file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}", Pos(1, 1))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        head = raw[: e.start]
        line = head.count(b"\n") + 1
        col = len(head) - (head.rfind(b"\n") + 1) + 1
        raise _Fail("yaml-encoding", f"not UTF-8: byte 0x{raw[e.start]:02x} cannot be decoded", Pos(line, col))
    if "\x00" in text:
        i = text.index("\x00")
        raise _Fail("yaml-encoding", "NUL character in a text file", Pos(text.count("\n", 0, i) + 1, 1))
    return text


def _compose_libyaml(text: str) -> list:
    loader = _Loader(text)
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
        return nodes
    finally:
        loader.dispose()


def _compose_ruamel(text: str) -> list:
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    return list(y.compose_all(text))


def _syntax_error(exc: Exception) -> _Fail:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    msg = f"{problem} ({context})" if context else str(problem)
    return _Fail("yaml-syntax", msg, _pos(mark) if mark is not None else Pos(1, 1))


class _Slow(Exception):
    """The fast path declines; the exact path decides."""


class _FastLoader(_Loader):  # type: ignore[misc, valid-type]
    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        out: dict = {}
        for knode, vnode in node.value:
            if type(knode).__name__ != "ScalarNode":
                raise _Slow
            key = knode.value  # keys are names, always strings (as in the exact path)
            if key in out:
                raise _Slow
            out[key] = self.construct_object(vnode, deep=deep)
        return out


# Dates stay strings, as in the exact path.
_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda self, node: node.value)

# Anchors, aliases, tags and merge keys: the exact path handles (and bounds) them.
_EXACT_ONLY = ("&", "*", "!", "<<")


def _parse_fast(text: str, file: str) -> list[YamlDoc] | None:
    if any(c in text for c in _EXACT_ONLY):
        return None
    loader = _FastLoader(text)
    try:
        datas = []
        while loader.check_data():
            datas.append(loader.get_data())
    except (yaml.YAMLError, _Slow, RecursionError):
        return None
    finally:
        loader.dispose()
    source = _Source(text, file)
    return [YamlDoc(file, i, d, source=source) for i, d in enumerate(datas)]


def _parse_exact(text: str, file: str) -> tuple[list[YamlDoc], list[Diagnostic]]:
    try:
        try:
            nodes = _compose_libyaml(text)
        except yaml.YAMLError as first:
            try:
                nodes = _compose_ruamel(text)
            except Exception as second:  # ruamel's errors share the mark/problem shape
                raise _syntax_error(second if getattr(second, "problem_mark", None) else first)
        docs = []
        for i, node in enumerate(nodes):
            doc = YamlDoc(file=file, index=i, data=None, start=_pos(node.start_mark))
            doc.data = _Walker(doc).walk(node, ())
            docs.append(doc)
        return docs, []
    except _Fail as f:
        return [], [Diagnostic("error", f.code, f.message, file, f.pos)]
    except RecursionError:
        return [], [Diagnostic("error", "yaml-alias-limit", "nesting too deep", file, Pos(1, 1))]


def parse(raw: bytes, file: str, exact: bool = False) -> tuple[list[YamlDoc], list[Diagnostic]]:
    """Parse every document of a file. On error: no documents, one diagnostic."""
    try:
        text = _decode(raw, file)
    except _Fail as f:
        return [], [Diagnostic("error", f.code, f.message, file, f.pos)]
    if not exact:
        docs = _parse_fast(text, file)
        if docs is not None:
            return docs, []
    return _parse_exact(text, file)
