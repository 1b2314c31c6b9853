"""A fast YAML dumper for plain data (dict/list/str/bool/int/float/None) on libyaml's C emitter.

Output is byte-identical to
`yaml.dump(doc, Dumper=CSafeDumper, sort_keys=True, default_flow_style=False,
allow_unicode=True, width=4096)` with multi-line strings as literal blocks (`|`); the tests
check that. Why not just call `yaml.dump`: PyYAML's representer and serializer are Python
code that visits every node and runs the implicit-tag regexes on every scalar, which costs
~2.5 ms for one KFP pipeline; here the event stream is built directly and each distinct
scalar's event is made once (the tag check is PyYAML's own `Resolver`, memoised), so the
same document takes ~1 ms, most of it inside libyaml.
"""

from __future__ import annotations

import math
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


def _events(obj: Any, out: list) -> None:
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
    events: list = [StreamStartEvent(encoding="utf-8"), DocumentStartEvent(explicit=False)]
    _events(doc, events)
    events.append(DocumentEndEvent(explicit=False))
    events.append(StreamEndEvent())
    text = yaml.emit(events, Dumper=_Dumper, allow_unicode=True, width=4096)
    return text.encode("utf-8") if isinstance(text, str) else text


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
