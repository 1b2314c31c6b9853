"""Strict YAML with positions, fast.

Two paths give the same data:

- The fast path composes with libyaml's C parser (PyYAML's CSafeLoader) and converts the
  node tree to data in one pass, declining (to the exact path) at a duplicate or non-string
  key. It keeps no positions: most files are valid and never need them. Files with anchors, aliases, tags or merge keys skip it, so alias bombs
  and custom tags never reach a constructor.
- The exact path composes nodes (libyaml first; ruamel.yaml's pure parser as a second
  opinion where libyaml is stricter, e.g. `{uri: hf://x/y}` in older builds) and walks them
  with our own strictness: duplicate keys, custom tags and non-string keys are errors and
  alias expansion is bounded, so a billion-laughs file fails in milliseconds. It records the
  line and column of every key and value.

A document's positions are computed on first use, by the exact path over the same bytes, so
only files that have a diagnostic pay for them.

Limits hold on both paths, and the exact path reports each where it was crossed: nesting
depth, nodes per document, integer size. libyaml's composer recurses in C (about 50,000
levels overflow the stack), so a file that could nest deeper than `_COMPOSE_SAFE_DEPTH` by a
cheap upper bound, or that is large enough to hold more than `MAX_NODES` nodes, is first
scanned as a flat event stream, which never recurses and stops at the first crossing.
"""

from __future__ import annotations

import math
import re
from sys import intern as _intern
from typing import Any

import yaml

from specops.diagnostics import Diagnostic, Pos
from specops.paths import MAX_FILE_BYTES
# Nodes materialised per file, counting every alias expansion. Real spec files have a few
# hundred; a billion-laughs file reaches this within microseconds of walking.
MAX_NODES = 100_000
# Collections nested in one another (the document's root counts as the first).
MAX_DEPTH = 64
# Integers must fit in int64: protobuf, JSON consumers and every backend API stop there, and
# Python refuses to print integers of more than 4,300 digits.
MAX_INT = (1 << 63) - 1
# Beyond this bound on nesting (or text long enough to hold MAX_NODES nodes), scan events
# before composing: the C composer is recursive.
_COMPOSE_SAFE_DEPTH = 1000
_SCAN_FROM_CHARS = MAX_NODES // 2

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP}

Path = tuple  # tuple[str | int, ...]

_ScalarNode, _SequenceNode, _MappingNode = yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode

# Plain scalar -> its resolved tag. A repo repeats the same few thousand keys and values in
# every file, and resolving one (a dict lookup by first character, a list, regex matches)
# was the largest single cost of composing. Short texts only, and a bounded number of them.
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_MEMO_LEN, _PLAIN_MEMO_MAX = 64, 1 << 16
_INTERN_LEN = 64


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """libyaml's safe loader with the same tag resolution, memoised: with no path resolvers
    (SafeLoader has none) a plain scalar's tag depends on its text alone, a quoted one's and
    a collection's on nothing."""

    # The composer calls these around every node for path resolvers, which SafeLoader has
    # none of (the inherited ones return after looking that up).
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is not _ScalarNode:
            return _MAP if kind is _MappingNode else _SEQ
        if not implicit[0]:
            return _STR
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            tag = _BaseLoader.resolve(self, kind, value, implicit)
            if len(value) <= _PLAIN_MEMO_LEN and len(_PLAIN_TAGS) < _PLAIN_MEMO_MAX:
                _PLAIN_TAGS[value] = tag
        return tag


class YamlDoc:
    """One YAML document: plain data plus the position of every key and value by path.

    A document from the exact path holds its positions (`keys`, `values`). One from the fast
    path holds none: `position` finds one by walking libyaml's node tree of the file's bytes
    (composed on demand, a few kept: _Composed) down that one path, so a diagnostic costs a
    compose in C and a walk of its path, and nothing per document stays in memory. `keys`
    and `values` still give every position of any document (the exact path, once)."""

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
            docs = self._source.exact() if self._source is not None else []
            # Both paths enforce the same limits, so the exact path holds this document too;
            # should they ever disagree, positions fall back to the document start.
            exact = docs[self.index] if self.index < len(docs) else None
            if exact is None:
                self._keys, self._values, self._start = {}, {}, self._start or Pos(1, 1)
            else:
                self._keys, self._values, self._start = exact._keys, exact._values, exact._start

    @property
    def start(self) -> Pos:
        if self._start is None and self._keys is None and self._source is not None:
            root = self._source.root(self.index)
            self._start = _pos(root.start_mark) if root is not None else Pos(1, 1)
        if self._start is None:
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

    def position(self, path: Path, key: bool = False) -> Pos | None:
        """The position of exactly `path` (of the mapping key that holds it, with `key`), or
        None where the document has no such node."""
        if self._keys is None and self._source is not None:
            root = self._source.root(self.index)
            if root is not None:
                return _locate(root, path, key)
        return (self.keys if key else self.values).get(path)

    def pos_of(self, path: Path, prefer_key: bool = False) -> Pos:
        """The position of `path`, or of its nearest ancestor that has one."""
        p = tuple(path)
        while True:
            if prefer_key and (pos := self.position(p, True)) is not None:
                return pos
            if (pos := self.position(p)) is not None or (pos := self.position(p, True)) is not None:
                return pos
            if not p:
                return self.start
            p = p[:-1]


def _locate(node: Any, path: Path, key: bool) -> Pos | None:
    """The span of the node at `path` under `node` (of its mapping key, with `key`), in a tree
    composed from text without anchors, aliases or merge keys (the fast path's), where each
    path names one node: what the exact path's walk records there."""
    knode = None
    for step in path:
        if type(node) is _MappingNode:
            for k, v in node.value:
                if type(step) is str and k.value == step:
                    knode, node = k, v
                    break
            else:
                return None
        elif type(node) is _SequenceNode and type(step) is int and 0 <= step < len(node.value):
            knode, node = None, node.value[step]
        else:
            return None
    if key:
        return _span(knode) if knode is not None else None
    return _span(node)


class _Source:
    """The bytes of one file, to compute exact positions on demand: every position once
    (`exact`), or single paths from its composed node trees (`root`)."""

    __slots__ = ("raw", "file", "_exact")

    def __init__(self, raw: bytes, file: str):
        # The bytes, not the text: the loader keeps them anyway (Repo.files), so a document's
        # way back to its positions costs no copy of the file.
        self.raw, self.file, self._exact = raw, file, None

    @property
    def text(self) -> str:
        return _decode(self.raw, self.file)

    def exact(self) -> list["YamlDoc | None"]:
        if self._exact is None:
            docs, _ = _parse_exact(self.text, self.file)
            self._exact = docs
        return self._exact

    def root(self, index: int) -> Any:
        """The node tree of document `index` (None if it cannot be composed: never for text
        the fast path loaded)."""
        roots = _composed.get(self)
        if roots is None:
            try:
                roots = _compose_libyaml(self.text)
            except (yaml.YAMLError, _Fail):
                roots = []
            _composed.put(self, roots)
        return roots[index] if index < len(roots) else None


class _Composed:
    """The node trees of the last few files asked about. A check that reports on a file
    often asks again (the next key, another environment); keeping every file's tree would
    cost more memory than the data itself."""

    SIZE = 8

    def __init__(self) -> None:
        self._trees: dict[int, tuple[_Source, list]] = {}

    def get(self, source: _Source) -> list | None:
        hit = self._trees.pop(id(source), None)
        if hit is None or hit[0] is not source:
            return None
        self._trees[id(source)] = hit  # most recent last
        return hit[1]

    def put(self, source: _Source, roots: list) -> None:
        self._trees[id(source)] = (source, roots)
        while len(self._trees) > self.SIZE:
            del self._trees[next(iter(self._trees))]


_composed = _Composed()


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


def _clip(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _int(node: Any) -> int:
    """A YAML 1.1 integer, within int64. The digits are measured before converting: a long
    sexagesimal literal (`1:2:3:…`) costs quadratic time, a long decimal one a ValueError."""
    text = node.value
    if len(text.replace("_", "")) > 70:  # 2^63 in any notation (binary included) is shorter
        raise _Fail("yaml-limit", f"integer {_clip(text)} is out of range (at most {MAX_INT})", _pos(node.start_mark))
    pn = node if isinstance(node, yaml.ScalarNode) else yaml.ScalarNode(_INT, text, node.start_mark)
    try:
        value = _constructor.construct_yaml_int(pn)
    except (ValueError, IndexError):  # `0b_`, `0x_`: the resolver's pattern allows them
        raise _Fail("yaml-syntax", f"'{_clip(text)}' is not a valid integer; quote it if it is text",
                    _pos(node.start_mark)) from None
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise _Fail("yaml-limit", f"integer {_clip(text)} is out of range (at most {MAX_INT})", _pos(node.start_mark))
    return value


def _float(node: Any) -> float:
    text = node.value
    pn = node if isinstance(node, yaml.ScalarNode) else yaml.ScalarNode(_FLOAT, text, node.start_mark)
    try:
        value = _constructor.construct_yaml_float(pn)
    except (ValueError, IndexError):
        raise _Fail("yaml-syntax", f"'{_clip(text)}' is not a valid number; quote it if it is text",
                    _pos(node.start_mark)) from None
    if math.isinf(value) and "inf" not in text.lower():
        raise _Fail("yaml-limit", f"number {_clip(text)} is out of range", _pos(node.start_mark))
    return value


def _scalar(node: Any) -> Any:
    tag = _tag(node)
    if tag == _STR:
        return node.value
    if tag == _INT:
        return _int(node)
    if tag == _FLOAT:
        return _float(node)
    if tag == _TIMESTAMP:
        # Dates stay strings, as on the fast path: specs compare and emit them verbatim (and
        # `2024-13-45` matches YAML's date pattern but is no date).
        return node.value
    if tag not in _SCALAR_TAGS:
        raise _Fail("yaml-tag", f"unsupported YAML tag '{_show_tag(tag)}'; specs use plain YAML values", _pos(node.start_mark))
    pn = node if isinstance(node, yaml.ScalarNode) else yaml.ScalarNode(tag, node.value)
    return _constructor.yaml_constructors[tag](_constructor, pn)


class _Walker:
    def __init__(self, doc: YamlDoc):
        doc._keys, doc._values = {}, {}
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()
        # Whether an alias was followed: the node-limit message then names the likely cause.
        self.expanded = False
        self._seen: set[int] = set()

    def _count(self, node: Any) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise _too_many(node.start_mark, self.expanded)

    def walk(self, node: Any, path: Path, depth: int = 0) -> Any:
        self._count(node)
        self.doc._values.setdefault(path, _span(node))
        kind = type(node).__name__
        if kind == "ScalarNode":
            return _scalar(node)
        if depth >= MAX_DEPTH:
            raise _too_deep(node.start_mark)
        nid = id(node)
        if nid in self._seen:  # the same node again: an alias was followed
            self.expanded = True
        self._seen.add(nid)
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
            self._count(knode)
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
        raise _Fail("yaml-encoding", "NUL character in a text file", _offset_pos(text, i))
    return text


def _too_deep(mark: Any) -> _Fail:
    return _Fail("yaml-limit", f"nesting deeper than {MAX_DEPTH} levels", _pos(mark))


def _too_many(mark: Any, expanded: bool = False) -> _Fail:
    if expanded:
        return _Fail("yaml-alias-limit", f"document expands to more than {MAX_NODES} nodes (alias expansion bomb?)",
                     _pos(mark))
    return _Fail("yaml-limit", f"document has more than {MAX_NODES} nodes", _pos(mark))


# ---- limits before composing ----------------------------------------------------------------

# A line's indentation and compact block indicators (`- `, `? `, `: `). Block collections
# nested in one another start at non-decreasing columns, rising at least every second level,
# so no block nesting is deeper than twice the longest such prefix plus a few.
_BREAKS = "\r\n\x85\u2028\u2029"
_PREFIX = re.compile(f"[{_BREAKS}][ \t?:-]*")
_SHALLOW_FLOW, _SHALLOW_PREFIX = 26, 18
_DEEP_PREFIX = re.compile(f"[{_BREAKS}][ \t?:-]{{{_SHALLOW_PREFIX}}}")


def _depth_bound(text: str) -> int:
    """An upper bound on the nesting depth of `text`, cheap for the usual shallow file.
    Flow collections nest at most as deep as there are brackets, block ones as deep as the
    indentation allows; flow never contains block."""
    flow = text.count("[") + text.count("{")
    if flow <= _SHALLOW_FLOW and not _DEEP_PREFIX.search(text) and not _DEEP_PREFIX.match("\n" + text[:_SHALLOW_PREFIX]):
        return MAX_DEPTH
    prefix = max(len(m) for m in _PREFIX.findall("\n" + text)) - 1
    return flow + 2 * prefix + 4


def _scan(events: Any) -> None:
    """Walk a flat event stream (no recursion) and fail at the first node that crosses the
    depth or node limit, counting what each alias expands to (an anchored subtree's size and
    height are known when it closes), so an alias bomb fails at the alias that crosses the
    limit. A syntax error ends the scan: composing reports it."""
    open_ = count = 0
    size: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, collection levels)
    stack: list[tuple[str | None, int, int]] = []  # (anchor, count before, levels below)
    for ev in events:
        name = type(ev).__name__
        if name == "DocumentStartEvent":
            open_ = count = 0
            size.clear()
            continue
        if name in ("MappingStartEvent", "SequenceStartEvent"):
            if open_ >= MAX_DEPTH:
                raise _too_deep(ev.start_mark)
            stack.append((ev.anchor, count, 0))
            open_ += 1
            count += 1
        elif name in ("MappingEndEvent", "SequenceEndEvent"):
            anchor, before, below = stack.pop()
            open_ -= 1
            if anchor is not None:
                size[anchor] = (count - before, below + 1)
            if stack:
                a, b, lv = stack[-1]
                stack[-1] = (a, b, max(lv, below + 1))
            continue
        elif name == "ScalarEvent":
            count += 1
            if ev.anchor is not None:
                size[ev.anchor] = (1, 0)
        elif name == "AliasEvent":
            nodes, levels = size.get(ev.anchor, (1, 0))
            if open_ + levels > MAX_DEPTH:
                raise _too_deep(ev.start_mark)
            if stack and levels:
                a, b, lv = stack[-1]
                stack[-1] = (a, b, max(lv, levels))
            count += nodes
            if count > MAX_NODES:
                raise _too_many(ev.start_mark, expanded=True)
            continue
        else:
            continue
        if count > MAX_NODES:
            raise _too_many(ev.start_mark)


def _libyaml_events(text: str) -> Any:
    loader = _Loader(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def _ruamel_events(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        yield from YAML(typ="safe", pure=True).parse(text)
    except YAMLError:
        return


def _precheck(text: str, file: str) -> None:
    """Fail where a limit is crossed if composing could meet deep nesting, many nodes or
    aliases (both paths then check depth as they convert)."""
    if _depth_bound(text) > _COMPOSE_SAFE_DEPTH or len(text) >= _SCAN_FROM_CHARS or "*" in text:
        _scan(_libyaml_events(text))


def _compose_libyaml(text: str) -> list:
    loader = _Loader(text)
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
        return nodes
    finally:
        loader.dispose()


def _compose_ruamel(text: str, file: str) -> list:
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    try:
        return list(y.compose_all(text))
    except RecursionError:
        # ruamel's composer recurses in Python: locate the crossing in its event stream.
        _scan(_ruamel_events(text))
        raise _Fail("yaml-limit", f"nesting deeper than {MAX_DEPTH} levels", Pos(1, 1)) from None


_LINE_BREAK = re.compile("\r\n|[" + _BREAKS + "]")


def _offset_pos(text: str, index: int) -> Pos:
    """The line and column of character `index` of `text`, counting lines as YAML does (the
    reader's first forbidden character comes first in the text: `find` locates it)."""
    if index < 0:
        return Pos(1, 1)
    head = _lines(text[:index])
    return Pos(len(head), len(head[-1]) + 1)


def _lines(text: str) -> list[str]:
    """The text's lines as YAML counts them (Python's splitlines also breaks at \\f, \\v…)."""
    return _LINE_BREAK.split(text)


def _syntax_error(exc: Exception, text: str) -> _Fail:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    msg = f"{problem} ({context})" if context else str(problem)
    if mark is None:
        char = getattr(exc, "character", None)  # a reader error: a character YAML forbids
        if isinstance(char, int):
            shown = f"U+{char:04X}" if char > 0xFF else f"#x{char:02x}"
            return _Fail("yaml-syntax", f"character {shown} is not allowed in YAML ({getattr(exc, 'reason', '')})",
                         _offset_pos(text, text.find(chr(char))))
        return _Fail("yaml-syntax", msg, Pos(1, 1))
    lines = _lines(text)
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    last = Pos(len(lines), len(lines[-1]) + 1)
    if context_mark is not None and context == "while scanning a simple key":
        # "could not find expected ':'": the scanner gives up lines later; the culprit is the
        # plain scalar that started there.
        return _Fail("yaml-syntax", f"expected ':' after this key ({problem})", _pos(context_mark))
    if (mark.line + 1, mark.column + 1) < (last.line, last.col):
        return _Fail("yaml-syntax", msg, _pos(mark))
    # The file ended inside something: point where it opened (the quote, or the innermost
    # `[`/`{` still open), not one line past the end.
    if context_mark is not None and (context or "").endswith("quoted scalar"):
        return _Fail("yaml-syntax", "this quoted string is never closed: the file ends first", _pos(context_mark))
    opened = _open_flow(text)
    if opened is not None:
        line = lines[opened.line] if opened.line < len(lines) else ""
        opener = line[opened.column:opened.column + 1] or "["
        return _Fail("yaml-syntax", f"'{opener}' is never closed: the file ends first", _pos(opened))
    if context_mark is not None and (context_mark.line + 1, context_mark.column + 1) < (last.line, last.col):
        return _Fail("yaml-syntax", msg, _pos(context_mark))
    return _Fail("yaml-syntax", msg, last)


def _open_flow(text: str) -> Any:
    """The start mark of the innermost flow collection still open where parsing stops."""
    stack: list = []
    for ev in _libyaml_events(text):
        if isinstance(ev, yaml.CollectionStartEvent):
            stack.append(ev.start_mark if ev.flow_style else None)
        elif isinstance(ev, yaml.CollectionEndEvent) and stack:
            stack.pop()
    flows = [m for m in stack if m is not None]
    return flows[-1] if flows else None


class _Slow(Exception):
    """The fast path declines; the exact path decides."""


_BOOLS = SafeConstructor.bool_values


def _fast_data(node: Any, depth: int) -> Any:
    """The plain data of a node composed from text without anchors, aliases, tags or merge
    keys: a tree whose tags libyaml's resolver chose, converted in one pass. (PyYAML's own
    constructor keeps an object table and a generator per collection for graphs; that was
    most of constructing.) What the exact path reports or decides raises _Slow: a key that
    is no scalar or comes twice, a number past the limits, nesting past MAX_DEPTH (the root
    collection is depth 0, as on the exact path), a tag no plain value resolves to."""
    if type(node) is _ScalarNode:
        tag = node.tag
        if tag == _STR or tag == _TIMESTAMP:  # dates stay strings, as on the exact path
            value = node.value
            # Short texts interned, like keys: names, types and references recur in every
            # file (and pydantic keeps the same objects in the models).
            return _intern(value) if len(value) <= _INTERN_LEN else value
        try:
            if tag == _INT:
                return _int(node)
            if tag == _FLOAT:
                return _float(node)
        except _Fail:
            raise _Slow from None
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return _BOOLS[node.value.lower()]
        raise _Slow  # `=` resolves to !!value, which the exact path refuses
    if depth >= MAX_DEPTH:
        raise _Slow
    depth += 1
    if type(node) is _SequenceNode:
        return [_fast_data(item, depth) for item in node.value]
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        if type(knode) is not _ScalarNode:
            raise _Slow
        # Keys are names, always strings (as on the exact path); interned: a 10,000-spec repo
        # repeats a few hundred names millions of times.
        key = _intern(knode.value)
        if key in out:
            raise _Slow
        out[key] = _fast_data(vnode, depth)
    return out


# Anchors, aliases, tags and merge keys: the exact path handles (and bounds) them.
_EXACT_ONLY = ("&", "*", "!", "<<")


def _parse_fast(text: str, raw: bytes, file: str) -> list[YamlDoc] | None:
    if any(c in text for c in _EXACT_ONLY):
        return None
    loader = _Loader(text)
    try:
        datas = []
        while loader.check_node():
            datas.append(_fast_data(loader.get_node(), 0))
    except (yaml.YAMLError, _Slow):
        return None
    finally:
        loader.dispose()
    source = _Source(raw, file)
    return [YamlDoc(file, i, d, source=source) for i, d in enumerate(datas)]


def _parse_exact(text: str, file: str) -> tuple[list[YamlDoc], list[Diagnostic]]:
    # Callers ran _precheck on this text (parse; _Source holds only text that passed it).
    try:
        try:
            nodes = _compose_libyaml(text)
        except yaml.YAMLError as first:
            try:
                nodes = _compose_ruamel(text, file)
            except _Fail:
                raise
            except Exception as second:  # ruamel's errors share the mark/problem shape
                raise _syntax_error(second if getattr(second, "problem_mark", None) else first, text)
        docs = []
        for i, node in enumerate(nodes):
            doc = YamlDoc(file=file, index=i, data=None, start=_pos(node.start_mark))
            doc.data = _Walker(doc).walk(node, ())
            docs.append(doc)
        return docs, []
    except _Fail as f:
        return [], [Diagnostic("error", f.code, f.message, file, f.pos)]


def fast_datas(docs: list[YamlDoc]) -> list[Any] | None:
    """The documents' data when every one came from the fast path (positions still to be
    computed on demand), else None: what a parse cache may keep and `from_datas` rebuilds."""
    if not docs or any(d._keys is not None or d._source is None for d in docs):
        return None
    return [d.data for d in docs]


def from_datas(raw: bytes, file: str, datas: list[Any]) -> list[YamlDoc]:
    """The documents `parse` gave for these bytes, from their data (`fast_datas`): positions
    are computed from the bytes on demand, as after a fast parse."""
    source = _Source(raw, file)  # these bytes decoded cleanly when they were parsed
    return [YamlDoc(file, i, d, source=source) for i, d in enumerate(datas)]


def parse(raw: bytes, file: str, exact: bool = False) -> tuple[list[YamlDoc], list[Diagnostic]]:
    """Parse every document of a file. On error: no documents, one diagnostic."""
    try:
        text = _decode(raw, file)
        _precheck(text, file)
    except _Fail as f:
        return [], [Diagnostic("error", f.code, f.message, file, f.pos)]
    if not exact:
        docs = _parse_fast(text, raw, file)
        if docs is not None:
            return docs, []
    return _parse_exact(text, file)
