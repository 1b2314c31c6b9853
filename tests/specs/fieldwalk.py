"""Every field of every kind's pydantic model, as the YAML path a spec author writes."""

from __future__ import annotations

import typing
from typing import Any, Iterator

from pydantic import BaseModel

from specops.specs import KINDS, document_model


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """('' | '[]' | '{}', model) for every pydantic model an annotation can hold."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin is typing.Annotated:
        yield from _models_in(args[0])
    elif origin in (list, tuple):
        for a in args:
            for suffix, m in _models_in(a):
                yield "[]" + suffix, m
    elif origin is dict:
        for suffix, m in _models_in(args[1]):
            yield "{}" + suffix, m
    elif args:  # Union / Optional / X | Y
        for a in args:
            yield from _models_in(a)


def fields_of(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}" if prefix else key
        nested = list(_models_in(info.annotation))
        if not nested:
            yield path
            continue
        yield path  # the field itself (e.g. `resources` as a whole)
        for suffix, m in nested:
            yield from fields_of(m, path + suffix)


def all_fields() -> dict[str, list[str]]:
    """kind -> sorted unique field paths (from the document root, aliases as written)."""
    return {kind: sorted(set(fields_of(document_model(kind)))) for kind in KINDS}


if __name__ == "__main__":
    for kind, paths in all_fields().items():
        for p in paths:
            print(kind, p)
