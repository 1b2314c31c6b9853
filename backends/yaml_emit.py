"""A fast YAML dumper for plain data (dict/list/str/bool/int/float/None) on libyaml's C emitter.

Output is byte-identical to
`yaml.dump(doc, Dumper=CSafeDumper, sort_keys=True, default_flow_style=False,
allow_unicode=True, width=4096)` with multi-line strings as literal blocks (`|`); the tests
check that. Why not just call `yaml.dump`: PyYAML's representer and serializer are Python
code that visits every node and runs the implicit-tag regexes on every scalar, which costs
~2.5 ms for one KFP pipeline; here the event stream is built directly and each distinct
scalar's event is made once (the tag check is PyYAML's own `Resolver`, memoised), so the
same document takes ~1 ms, most of it inside libyaml.

`dump` goes one step further and writes the block structure itself (~3x faster again: 70 %
of that millisecond was libyaml taking each Python event object apart). libyaml still
decides how every scalar is written: each distinct string is rendered once, by libyaml, in
a one-item document (`_probe`), and reused wherever it occurs, so quoting, escaping and
literal-block hints are libyaml's own. Only strings that are plainly plain (a conservative
pattern, and the same implicit-tag check) skip the probe. What depends on the place in the
document (line folding past the 4096 width, `? ` complex keys, `|+` blocks, a scalar as the
whole document) is not reproduced: such a document goes through the event path
(`_dump_events`), and the tests compare both paths with PyYAML's own dumper.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_RESOLVER = yaml.resolver.Resolver()
_STR = "tag:yaml.org,2002:str"

# Events carry no position, so one object can stand for every occurrence of a scalar.
_MAP_START = MappingStartEvent(None, None, True, flow_style=False)
_MAP_END = MappingEndEvent()
_SEQ_START = SequenceStartEvent(None, None, True, flow_style=False)
_SEQ_END = SequenceEndEvent()
_TRUE = ScalarEvent(None, None, (True, False), "true")
_FALSE = ScalarEvent(None, None, (True, False), "false")
_NULL = ScalarEvent(None, None, (True, False), "null")
_MEMO_MAX = 50_000
_str_events: dict[str, ScalarEvent] = {}


def _str_event(value: str) -> ScalarEvent:
    ev = _str_events.get(value)
    if ev is None:
        if "\n" in value:
            ev = ScalarEvent(None, None, (True, True), value, style="|")
        elif _RESOLVER.resolve(ScalarNode, value, (True, False)) == _STR:
            ev = ScalarEvent(None, None, (True, True), value)  # may stay plain
        else:
            # Would read back as a bool/number/null ("true", "1.0", ""): must be quoted.
            ev = ScalarEvent(None, None, (False, True), value)
        if len(_str_events) < _MEMO_MAX:
            _str_events[value] = ev
    return ev


def _float(value: float) -> str:
    # SafeRepresenter.represent_float, so the text matches yaml.dump's.
    if value != value:
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def _events(obj: Any, out: _Out) -> None:
    t = type(obj)
    if t is str:
        out.append(_str_event(obj))
    elif t is dict:
        out.append(_MAP_START)
        for key in sorted(obj):
            if type(key) is not str:
                raise TypeError(f"mapping key {key!r} is not a string")
            out.append(_str_event(key))
            _events(obj[key], out)
        out.append(_MAP_END)
    elif t is list or t is tuple:
        out.append(_SEQ_START)
        for item in obj:
            _events(item, out)
        out.append(_SEQ_END)
    elif t is bool:
        out.append(_TRUE if obj else _FALSE)
    elif t is int:
        out.append(ScalarEvent(None, None, (True, False), str(obj)))
    elif t is float:
        out.append(ScalarEvent(None, None, (True, False), _float(obj)))
    elif obj is None:
        out.append(_NULL)
    else:
        raise TypeError(f"cannot serialise {t.__name__} to YAML")


def dump(doc: Any) -> bytes:
    """`doc` as block-style YAML (sorted keys, no anchors), UTF-8."""
    t = type(doc)
    if (t is dict or t is list or t is tuple) and doc:
        out = _Out()
        try:
            if t is dict:
                _map(doc, "", "", out)
            else:
                _seq(doc, "", "", out)
        except _Unusual:
            return _dump_events(doc)
        if out.open_ended:
            out.append("...\n")  # libyaml's end marker after a last block that keeps its trailing lines
        return "".join(out).encode("utf-8")
    return _dump_events(doc)


def _dump_events(doc: Any) -> bytes:
    """`dump` through libyaml's emitter, event by event: any document."""
    events: list = [StreamStartEvent(encoding="utf-8"), DocumentStartEvent(explicit=False)]
    _events(doc, events)
    events.append(DocumentEndEvent(explicit=False))
    events.append(StreamEndEvent())
    text = yaml.emit(events, Dumper=_Dumper, allow_unicode=True, width=4096)
    return text.encode("utf-8") if isinstance(text, str) else text


# ---- the block writer ------------------------------------------------------------------------


class _Unusual(Exception):
    """A document `_map`/`_seq` leave to libyaml's emitter (see the module docstring)."""


# Printable ASCII on one line: how libyaml writes it follows from a few rules (_text).
_ASCII_LINE = re.compile(r"[ -~]+")
_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")
_BREAKS = re.compile("[\r\x85\u2028\u2029]")  # line breaks to libyaml besides \n
_LONG = 1000  # longer scalars could meet the 4096 width, where libyaml folds them by column
_DEEP = " " * 1000
# Rendered scalars by text. A repo's repeated strings (keys, constants) come early; past the
# bound, further texts (mostly names seen once) are rendered each time they occur.
_VALS_MAX = 20_000
_vals: dict[str, str | tuple[str, tuple[str, ...]]] = {}
_keys: dict[str, str] = {}


def _emit_text(body: list) -> str:
    events = [StreamStartEvent(encoding="utf-8"), DocumentStartEvent(explicit=False), *body,
              DocumentEndEvent(explicit=False), StreamEndEvent()]
    text = yaml.emit(events, Dumper=_Dumper, allow_unicode=True, width=4096)
    return text.decode("utf-8") if isinstance(text, bytes) else text


def _probe_value(value: str) -> str | tuple[str, tuple[str, ...]]:
    """How libyaml writes `value` as a block value: one line, or a literal block's
    (header, lines) with the lines' indentation taken off."""
    text = _emit_text([_SEQ_START, _str_event(value), _SEQ_END])
    if text.startswith("- |") and "+" in text[:text.index("\n")]:
        # Kept trailing lines: libyaml ends the stream with "..." after such a block.
        if not text.endswith("\n...\n"):
            raise _Unusual
        text = text[:-4]
    if not text.startswith("- ") or not text.endswith("\n") or _BREAKS.search(text):
        raise _Unusual  # a line break besides \n is written with the indent of its place
    lines = text[2:-1].split("\n")
    if len(lines) == 1:
        if len(text) > _LONG:
            raise _Unusual  # long enough to be folded by column
        return lines[0]
    head = lines[0]
    if head[:1] != "|" or any(ln and ln[:2] != "  " for ln in lines[1:]):
        raise _Unusual
    return head, tuple(ln[2:] for ln in lines[1:])


def _text(value: str) -> str:
    """How libyaml writes a one-line printable-ASCII string (its yaml_emitter_analyze_scalar
    and select_scalar_style, for that case): plain where the implicit-tag check reads it back
    as a string and no indicator, ": ", " #" or edge space forbids; single-quoted otherwise."""
    c = value[0]
    if (_RESOLVER.resolve(ScalarNode, value, (True, False)) == _STR
            and c not in _INDICATORS and c != " " and value[-1] != " "
            and not (c in "?:-" and value[1:2] in ("", " ")) and not value.startswith(("---", "..."))
            and ": " not in value and " #" not in value and not (len(value) > 1 and value[-1] == ":")):
        return value
    return "'" + value.replace("'", "''") + "'"


def _value(value: str) -> str | tuple[str, tuple[str, ...]]:
    got = _vals.get(value)
    if got is None:
        if "\n" in value:
            got = _probe_value(value)  # a literal block: lines of any length, never folded
        elif len(value) > _LONG:
            raise _Unusual
        elif _ASCII_LINE.fullmatch(value):
            got = _text(value)
        else:
            got = _probe_value(value)  # tabs, other line breaks, non-ASCII: libyaml decides
        if len(_vals) < _VALS_MAX:
            _vals[value] = got
    return got


def _key(key: str) -> str:
    got = _keys.get(key)
    if got is None:
        if type(key) is not str:
            raise TypeError(f"mapping key {key!r} is not a string")
        if len(key) <= 128 and _ASCII_LINE.fullmatch(key):
            got = _text(key)  # a simple key (at most 128 bytes) is written as the value is
        else:  # longer, other characters, line breaks: libyaml says how, as a key
            text = _emit_text([_MAP_START, _str_event(key), _NULL, _MAP_END])
            if (not text.endswith(": null\n") or "\n" in text[:-7] or text.startswith("? ")
                    or _BREAKS.search(text)):
                raise _Unusual  # a complex key (`? `): longer than 128 bytes
            got = text[:-7]
        if len(_keys) < _VALS_MAX:
            _keys[key] = got
    return got


class _Out(list):
    """The output's pieces, and whether the last literal block written was a `|+` one."""

    open_ended = False


def _block(lit: tuple[str, tuple[str, ...]], ind: str, out: _Out) -> str:
    head, lines = lit
    out.open_ended = "+" in head
    return head + "\n" + "".join(ind + ln + "\n" if ln else "\n" for ln in lines)


def _scalar(obj: Any) -> str:
    t = type(obj)
    if t is bool:
        return "true" if obj else "false"
    if t is int:
        return str(obj)
    if t is float:
        return _float(obj)
    if obj is None:
        return "null"
    raise TypeError(f"cannot serialise {t.__name__} to YAML")


def _map(doc: dict, ind: str, lead: str, out: _Out) -> None:
    """A non-empty mapping, keys at indent `ind`; `lead` goes before the first key (the
    indent, or nothing after a sequence's "- ")."""
    nxt = ind + "  "
    if len(nxt) > len(_DEEP):
        raise _Unusual
    for key in sorted(doc):
        v = doc[key]
        t = type(v)
        if t is str:
            r = _vals.get(v) or _value(v)
            out.append(f"{lead}{_keys.get(key) or _key(key)}: {r}\n" if type(r) is str
                       else f"{lead}{_keys.get(key) or _key(key)}: {_block(r, nxt, out)}")
        elif t is dict:
            if v:
                out.append(f"{lead}{_keys.get(key) or _key(key)}:\n")
                _map(v, nxt, nxt, out)
            else:
                out.append(f"{lead}{_keys.get(key) or _key(key)}: {{}}\n")
        elif t is list or t is tuple:
            if v:
                out.append(f"{lead}{_keys.get(key) or _key(key)}:\n")
                _seq(v, ind, ind, out)  # libyaml does not indent a sequence in a mapping
            else:
                out.append(f"{lead}{_keys.get(key) or _key(key)}: []\n")
        else:
            out.append(f"{lead}{_keys.get(key) or _key(key)}: {_scalar(v)}\n")
        lead = ind


def _seq(doc: list | tuple, ind: str, lead: str, out: _Out) -> None:
    """A non-empty sequence, its "- " at indent `ind`; `lead` goes before the first one."""
    nxt = ind + "  "
    if len(nxt) > len(_DEEP):
        raise _Unusual
    for v in doc:
        t = type(v)
        if t is str:
            r = _vals.get(v) or _value(v)
            out.append(f"{lead}- {r}\n" if type(r) is str else f"{lead}- {_block(r, nxt, out)}")
        elif t is dict:
            if v:
                out.append(lead + "- ")
                _map(v, nxt, "", out)
            else:
                out.append(lead + "- {}\n")
        elif t is list or t is tuple:
            if v:
                out.append(lead + "- ")
                _seq(v, nxt, "", out)
            else:
                out.append(lead + "- []\n")
        else:
            out.append(f"{lead}- {_scalar(v)}\n")
        lead = ind


def dump_reference(doc: Any) -> bytes:
    """The same document through PyYAML's representer: the slow path `dump` must equal."""

    class _Ref(_Dumper):  # type: ignore[misc,valid-type]
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def _s(dumper: Any, value: str) -> Any:
        return dumper.represent_scalar(_STR, value, style="|" if "\n" in value else None)

    _Ref.add_representer(str, _s)
    return yaml.dump(doc, Dumper=_Ref, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=4096).encode("utf-8")
