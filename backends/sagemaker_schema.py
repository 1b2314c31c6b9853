"""Validation of SageMaker pipeline definitions (Version 2020-12-01) against the official schema.

The schema is the official one (see `schemas/README.md`; vendored from the project's
`shared/reference/`, byte-identical, checked by the tests). Its `$schema` is
`http://json-schema.org/schema#`, i.e. "the latest draft", so it is validated with
jsonschema's Draft 2020-12 validator (its `definitions` + `#/definitions/...` refs are plain
JSON pointers there).

The schema lags the service and the sagemaker v3 SDK. `KNOWN_LAGS` lists exactly the
constructs it does not know and that specops tolerates. Each one is accepted only at its
known location and only in its known shape: it is checked against its own small shape
check, then removed (or, for a JsonGet operand, replaced by the `Get` it wraps) before the
rest of the document is validated against the official schema. The same key anywhere else,
or in another shape, is still an error.

jsonschema is imported inside the functions: the CLI imports this module at start-up.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = "sagemaker-pipeline-definition.schema.json"
SCHEMA_PATH = Path(__file__).parent / "schemas" / SCHEMA_FILE

# What the official schema (2025-04) does not describe but the service and the v3 SDK use.
KNOWN_LAGS: dict[str, str] = {
    "MlflowConfig": "top-level MLflow configuration (sagemaker v3 SDK; null when unset)",
    "PipelineExperimentConfig": "top-level experiment/trial naming (sagemaker v3 SDK)",
    "OutputDataConfig.CompressionType": "a Training step's artifact compression (GZIP | NONE)",
    "PropertyFiles": "a Processing step's property files (the source of JsonGet)",
    # Not among the four listed in FACTS.md, but the schema has no JsonGet at all and the
    # v3 SDK's own ConditionStep on a JsonGet fails there too (tests/backends/data has its
    # output); reading a metric from a property file is the only way a ConditionStep can
    # gate on an evaluation.
    "Std:JsonGet": "a ConditionStep operand reading a Processing step's property file",
}

_PROPERTY_FILE_GET = re.compile(r"^Steps\.([A-Za-z0-9\-_]{1,64})\.PropertyFiles\.([^.\s]+)$")


def reference_schema_path() -> Path:
    """The project's shared reference copy (`<repo>/../shared/reference/`), for the tests."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "reference" / SCHEMA_FILE


@lru_cache(maxsize=1)
def _validators() -> tuple[Any, dict[str, Any]]:
    """The whole-document validator and one validator per step `Type`.

    The schema's `Steps` items are a oneOf over 16 step definitions whose `Type` enums are
    disjoint, so validating a step against the one definition its `Type` names is exactly
    the oneOf, and ~10x faster (jsonschema otherwise tries every branch for every step).
    The per-type map is read from the schema itself.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    # "http://json-schema.org/schema#" names no draft: it means the latest one.
    cls = validator_for(schema, default=Draft202012Validator)
    base = {k: v for k, v in schema.items() if k in ("$schema", "$id", "definitions")}
    refs: dict[str, list[dict[str, str]]] = {}
    for ref in schema["properties"]["Steps"]["items"]["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        for typ in schema["definitions"][name]["properties"]["Type"]["enum"]:
            refs.setdefault(typ, []).append(ref)
    # Two definitions may share a Type (the schema's EndpointConfigStep says "Endpoint"):
    # those keep their oneOf, restricted to the definitions that Type can mean.
    by_type = {typ: cls({**base, **(rs[0] if len(rs) == 1 else {"oneOf": rs})}) for typ, rs in refs.items()}
    return cls(schema), by_type


def _is_string_arg(v: Any) -> bool:
    return isinstance(v, str) or (
        isinstance(v, dict) and set(v) == {"Get"} and isinstance(v["Get"], str)
    )


def _steps_with_paths(doc: dict) -> list[tuple[str, dict]]:
    """Every step dict with its JSON path, top-level and inside condition branches."""
    out: list[tuple[str, dict]] = []
    steps = doc.get("Steps")
    if not isinstance(steps, list):
        return out
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        out.append((f"Steps/{i}", step))
        args = step.get("Arguments")
        if step.get("Type") == "Condition" and isinstance(args, dict):
            for branch in ("IfSteps", "ElseSteps"):
                inner = args.get(branch)
                if isinstance(inner, list):
                    for j, s in enumerate(inner):
                        if isinstance(s, dict):
                            out.append((f"Steps/{i}/Arguments/{branch}/{j}", s))
    return out


def _strip_known_lags(doc: dict, errors: list[str]) -> dict:
    """A copy of `doc` without the known-lag constructs; their shape errors go to `errors`."""
    doc = copy.deepcopy(doc)
    for key in ("MlflowConfig", "PipelineExperimentConfig"):
        if key not in doc:
            continue
        value = doc.pop(key)
        allowed = ({"MlflowResourceArn", "MlflowExperimentName", "MlflowRunName"}
                   if key == "MlflowConfig" else {"ExperimentName", "TrialName"})
        if value is None:
            continue
        if not isinstance(value, dict) or not set(value) <= allowed or not all(
            v is None or _is_string_arg(v) for v in value.values()
        ):
            errors.append(f"{key}: must be null or an object with {sorted(allowed)} string values")

    steps = _steps_with_paths(doc)
    declared: set[tuple[str, str]] = set()
    for path, step in steps:
        typ, args = step.get("Type"), step.get("Arguments")
        if typ == "Processing" and "PropertyFiles" in step:
            files = step.pop("PropertyFiles")
            outputs = set()
            if isinstance(args, dict):
                for o in (args.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
                    if isinstance(o, dict) and isinstance(o.get("OutputName"), str):
                        outputs.add(o["OutputName"])
            if not isinstance(files, list):
                errors.append(f"{path}/PropertyFiles: must be an array")
                continue
            for k, f in enumerate(files):
                keys = {"PropertyFileName", "OutputName", "FilePath"}
                if not isinstance(f, dict) or set(f) != keys or not all(
                    isinstance(f[x], str) and f[x] for x in keys
                ):
                    errors.append(f"{path}/PropertyFiles/{k}: must have exactly {sorted(keys)} (strings)")
                    continue
                if f["OutputName"] not in outputs:
                    errors.append(f"{path}/PropertyFiles/{k}: OutputName {f['OutputName']!r} is no output of the step")
                declared.add((str(step.get("Name")), f["PropertyFileName"]))
        elif typ == "Training" and isinstance(args, dict):
            odc = args.get("OutputDataConfig")
            if isinstance(odc, dict) and "CompressionType" in odc:
                ct = odc.pop("CompressionType")
                if ct not in ("GZIP", "NONE"):
                    errors.append(f"{path}/Arguments/OutputDataConfig/CompressionType: must be 'GZIP' or 'NONE'")

    for path, step in steps:
        args = step.get("Arguments")
        if step.get("Type") != "Condition" or not isinstance(args, dict):
            continue
        for k, cond in enumerate(args.get("Conditions") or []):
            if not isinstance(cond, dict):
                continue
            for side in ("LeftValue", "RightValue"):
                v = cond.get(side)
                if not (isinstance(v, dict) and "Std:JsonGet" in v):
                    continue
                where = f"{path}/Arguments/Conditions/{k}/{side}"
                jg = v["Std:JsonGet"]
                m = None
                if set(v) == {"Std:JsonGet"} and isinstance(jg, dict) and set(jg) == {"PropertyFile", "Path"}:
                    pf = jg["PropertyFile"]
                    if isinstance(pf, dict) and set(pf) == {"Get"} and isinstance(pf["Get"], str):
                        m = _PROPERTY_FILE_GET.match(pf["Get"])
                if m is None or not isinstance(jg.get("Path"), str) or not jg["Path"]:
                    errors.append(f"{where}: Std:JsonGet needs exactly PropertyFile "
                                  "{'Get': 'Steps.<step>.PropertyFiles.<name>'} and a non-empty Path")
                    continue
                if (m.group(1), m.group(2)) not in declared:
                    errors.append(f"{where}: Std:JsonGet reads property file {m.group(2)!r} of step "
                                  f"{m.group(1)!r}, which no Processing step declares")
                cond[side] = {"Get": pf["Get"]}
    return doc


def _explain(err: Any) -> list[tuple[str, str]]:
    """(path, message) of the leaf errors behind a oneOf/anyOf failure, following the branch
    that fits best.

    A branch whose `Type` enum does not match is the wrong step kind and is skipped, so the
    message names the field that is wrong rather than "not valid under any schema"; when no
    branch's `Type` matches, the message says which types there are.
    """
    path = "/".join(str(p) for p in err.absolute_path) or "<root>"
    if err.validator not in ("oneOf", "anyOf") or not err.context:
        msg = err.message if len(err.message) <= 300 else err.message[:297] + "..."
        return [(path, msg)]
    branches: dict[int, list[Any]] = {}
    for sub in err.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def wrong_type(sub: Any) -> bool:
        return sub.validator == "enum" and list(sub.relative_path) == ["Type"]

    fitting = {b: subs for b, subs in branches.items() if not any(wrong_type(s) for s in subs)}
    if not fitting and all(any(wrong_type(s) for s in subs) for subs in branches.values()):
        types = sorted({v for subs in branches.values() for s in subs if wrong_type(s) for v in s.validator_value})
        return [(f"{path}/Type", f"{err.instance.get('Type')!r} is not a Type allowed here (one of {', '.join(types)})")]
    candidates = fitting or branches
    best = min(sorted(candidates), key=lambda b: len(candidates[b]))
    out: list[tuple[str, str]] = []
    for sub in candidates[best]:
        out.extend(_explain(sub))
    return out


def validate_definition(doc: dict) -> list[str]:
    """Errors of a pipeline definition against the official schema, known lags tolerated.

    Returns human-readable `path: message` lines, sorted; empty when the document is valid.
    """
    errors: list[str] = []
    if not isinstance(doc, dict):
        return ["<root>: a pipeline definition is a JSON object"]
    stripped = _strip_known_lags(doc, errors)
    whole, by_type = _validators()
    steps = stripped.get("Steps")
    if isinstance(steps, list) and all(isinstance(s, dict) and s.get("Type") in by_type for s in steps):
        for i, step in enumerate(steps):
            for err in by_type[step["Type"]].iter_errors(step):
                for path, msg in _explain(err):
                    full = f"Steps/{i}" if path == "<root>" else f"Steps/{i}/{path}"
                    errors.append(f"{full}: {msg}")
        stripped = {**stripped, "Steps": []}
    for err in whole.iter_errors(stripped):
        errors.extend(f"{path}: {msg}" for path, msg in _explain(err))
    return sorted(set(errors))
