"""The shipped examples validate, and the committed JSON Schema is current and accepts them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from specops.checks import analyze
from specops.frontend.schema import schema_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["churn", "support-assistant"]
SCHEMAS = ROOT / "compiler" / "schemas"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_validates_clean(name: str) -> None:
    resolved = analyze(ROOT / "examples" / name)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    assert sorted(resolved.envs) == ["dev", "prod", "staging"]


def test_committed_schemas_are_current() -> None:
    files = schema_files()
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(files)
    for name, data in files.items():
        assert (SCHEMAS / name).read_bytes() == data, f"{name} is stale: run `specops schema --out compiler/schemas`"


def _documents(name: str):
    for path in sorted((ROOT / "examples" / name).rglob("*.y*ml")):
        if "build" in path.parts or ".specops" in path.parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


@pytest.mark.parametrize("name", EXAMPLES)
def test_schema_accepts_every_example_document(name: str) -> None:
    schema = json.loads((SCHEMAS / "specops.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    docs = list(_documents(name))
    assert len(docs) >= 4
    for path, doc in docs:
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, f"{path}: {errors[0].message}"


def test_schema_rejects_a_misspelled_key() -> None:
    schema = json.loads((SCHEMAS / "specops.schema.json").read_text())
    path, doc = next((p, d) for p, d in _documents("churn") if d["kind"] == "Model")
    doc["spec"]["classical"]["algoritm"] = doc["spec"]["classical"].pop("algorithm")
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
