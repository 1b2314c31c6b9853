"""CustomResourceDefinition schemas as validators: the one helper behind every CRD check
(KServe's InferenceService, Kubeflow Trainer's TrainJob, prometheus-operator's PrometheusRule).

The API server prunes unknown fields silently, so a misspelled key in an emitted custom
resource would vanish on `kubectl apply`; validating against the CRD's `openAPIV3Schema` with
every listed object closed (`strict_structural`) catches it at compile or test time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

# ObjectMeta is left open by CRDs; these are the keys specops writes.
METADATA = ("name", "namespace", "labels", "annotations")


def strict_structural(schema: Any) -> Any:
    """A copy of a CRD openAPIV3Schema where objects with `properties` reject unknown keys.

    The API server prunes unknown fields silently (or rejects them under
    `kubectl --validate=strict`); in a JSON Schema validator they pass unless closed, so every
    object that lists its properties and does not opt into `x-kubernetes-preserve-unknown-fields`
    gets `additionalProperties: false`.
    """
    if isinstance(schema, list):
        return [strict_structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_structural(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=8)
def vendored_schema(path: Path, version: str) -> dict[str, Any]:
    """The `openAPIV3Schema` of one served version of a vendored CRD YAML file."""
    import yaml  # lazy: only when validating

    doc = next(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return next(v for v in doc["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


def errors(doc: dict[str, Any], schema: dict[str, Any], metadata: tuple[str, ...] = METADATA) -> list[str]:
    """Every error of a custom resource against a CRD's openAPIV3Schema (strict), sorted, as
    `path.to.field: message`; `metadata` keys other than `metadata` are errors too."""
    import jsonschema  # lazy: only when validating

    validator = jsonschema.Draft7Validator(strict_structural(schema))
    out = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]
    out += [f"metadata.{k}: unexpected field" for k in sorted(set(doc.get("metadata", {})) - set(metadata))]
    return sorted(out)
