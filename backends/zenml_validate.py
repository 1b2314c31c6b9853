"""Strict validation of a ZenML run configuration (PipelineRunConfiguration, ZenML 0.92-0.98).

ZenML's config models are pydantic with `extra='ignore'`: a misspelled key is dropped
without a word and the run silently uses a default. This walks a run-config document
against the models' own fields, recursively (through Optional/Union/Annotated, dicts, lists
and, for `settings`, the settings class registered for each key), reports every key the
model does not have, and then lets pydantic validate the values. Imports zenml.
"""

from __future__ import annotations

import types
import typing
from collections import abc
from typing import Any, Iterable

from specops.diagnostics import suggestion


def validate(doc: Any, *, step_ids: Iterable[str] | None = None) -> list[str]:
    """Problems as 'path: message' lines, in document order; empty when the config is valid."""
    from pydantic import ValidationError
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    if not isinstance(doc, dict):
        return [f"<root>: a run configuration is a mapping, got {type(doc).__name__}"]
    errors: list[str] = []
    _walk(PipelineRunConfiguration, doc, "", errors)
    if step_ids is not None:
        known = sorted(step_ids)
        for sid in (doc.get("steps") or {}):
            if sid not in known:
                errors.append(f"steps.{sid}: no step with this id in the pipeline{suggestion(str(sid), known)}")
    try:
        PipelineRunConfiguration.model_validate(doc)
    except ValidationError as e:
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            errors.append(f"{loc}: {err['msg']}")
    return errors


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_model(tp: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _shape(tp: Any) -> str:
    """What JSON shape a type accepts: 'dict', 'list', 'scalar' or 'any'."""
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if tp is Any or isinstance(tp, typing.TypeVar):
        return "any"
    if _is_model(tp) or tp is dict or origin in (dict, abc.Mapping, abc.MutableMapping):
        return "dict"
    if tp in (list, tuple, set) or origin in (list, tuple, set, frozenset, abc.Sequence):
        return "list"
    if origin in (typing.Union, types.UnionType):
        return "any"
    return "scalar"


def _value_shape(value: Any) -> str:
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    return "scalar"


def _walk(tp: Any, value: Any, path: str, errors: list[str]) -> None:
    tp = _unwrap(tp)
    if value is None or tp is Any:
        return
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        _walk_union([a for a in typing.get_args(tp) if a is not type(None)], value, path, errors)
        return
    if _is_model(tp):
        if isinstance(value, dict):
            _walk_model(tp, value, path, errors)
        return  # other shapes (a Source given as a string…) are pydantic's to judge
    args = typing.get_args(tp)
    if _shape(tp) == "dict" and isinstance(value, dict) and len(args) == 2:
        if _is_settings(args[1]):
            _walk_settings(value, path, errors)
            return
        for k, v in value.items():
            _walk(args[1], v, _join(path, k), errors)
        return
    if _shape(tp) == "list" and isinstance(value, (list, tuple)) and args:
        for i, v in enumerate(value):
            _walk(args[0], v, f"{path}[{i}]", errors)


def _walk_union(candidates: list[Any], value: Any, path: str, errors: list[str]) -> None:
    shape = _value_shape(value)
    fitting = [c for c in candidates if _shape(c) in (shape, "any")]
    first: list[str] | None = None
    for c in fitting:
        errs: list[str] = []
        _walk(c, value, path, errs)
        if not errs:
            return  # one reading of the value has only known keys
        if first is None:
            first = errs
    if first:
        errors.extend(first)


def _walk_model(model: Any, value: dict, path: str, errors: list[str]) -> None:
    fields = model.model_fields
    names: dict[str, Any] = {}
    for name, f in fields.items():
        names[name] = f
        if isinstance(f.alias, str):
            names[f.alias] = f
        if isinstance(f.validation_alias, str):
            names[f.validation_alias] = f
    allow_extra = model.model_config.get("extra") == "allow"
    for key, v in value.items():
        f = names.get(key) if isinstance(key, str) else None
        if f is None:
            if not allow_extra:
                errors.append(f"{_join(path, key)}: unknown key for {model.__name__} "
                              f"(ZenML would silently ignore it){suggestion(str(key), fields)}")
            continue
        _walk(f.annotation, v, _join(path, key), errors)


def _is_settings(tp: Any) -> bool:
    from zenml.config.base_settings import BaseSettings

    tp = _unwrap(tp)
    return isinstance(tp, type) and issubclass(tp, BaseSettings)


def _walk_settings(value: dict, path: str, errors: list[str]) -> None:
    """`settings` maps a key to a settings class: general keys ('resources', 'docker',
    'deployment') have a fixed class; stack-component keys ('orchestrator.kubernetes')
    depend on the stack and cannot be checked offline, so they are refused here."""
    from zenml.utils import settings_utils

    general = settings_utils.get_general_settings()
    for key, v in value.items():
        where = _join(path, key)
        cls = general.get(key) if isinstance(key, str) else None
        if cls is None:
            if isinstance(key, str) and settings_utils.is_valid_setting_key(key):
                errors.append(f"{where}: stack-component settings depend on the stack and cannot be "
                              f"checked offline; use one of {sorted(general)}")
            else:
                errors.append(f"{where}: unknown settings key{suggestion(str(key), general)} "
                              f"(general keys: {', '.join(sorted(general))})")
            continue
        if not isinstance(v, dict):
            errors.append(f"{where}: settings must be a mapping, got {type(v).__name__}")
            continue
        _walk_model(cls, v, where, errors)
        try:
            cls.model_validate(v)
        except Exception as e:  # pydantic.ValidationError; the run config's own pass sees only BaseSettings
            for err in getattr(e, "errors", lambda: [{"loc": (), "msg": str(e)}])():
                loc = ".".join(str(p) for p in err["loc"])
                errors.append(f"{_join(where, loc) if loc else where}: {err['msg']}")
