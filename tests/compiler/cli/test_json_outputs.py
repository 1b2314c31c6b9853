"""Every command that reports something has `--json`, and its output validates against the
JSON Schema committed for it in compiler/schemas/cli/ (Draft 2020-12, jsonschema)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from specops.backends import provider as P
from specops.cli import main
from tests.compiler.ops import fake_pipeline_provider
from tests.compiler.ops.ops_fixtures import FAKE, make_repo
from tests.moto_server import aws_test_env, client, moto_server

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "compiler" / "schemas" / "cli"
CHURN = ROOT / "examples" / "churn"
SUPPORT = ROOT / "examples" / "support-assistant"


def check(schema: str, *args: str, code: int = 0, env: dict | None = None) -> dict:
    r = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert r.exit_code == code, r.output
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(json.loads((SCHEMAS / f"{schema}.schema.json").read_text())).validate(doc)
    return doc


def test_every_schema_is_a_valid_draft_2020_12_schema():
    names = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert len(names) == 17
    for n in names:
        jsonschema.Draft202012Validator.check_schema(json.loads((SCHEMAS / n).read_text()))


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    fake_pipeline_provider._calls.clear()
    return make_repo(tmp_path)


def test_validate_render_graph_json():
    doc = check("validate", "validate", str(CHURN), "--json")
    assert doc["valid"] is True and doc["environments"] == ["dev", "prod", "staging"]
    assert check("validate", "validate", str(CHURN), "--format", "json") == doc  # the alias
    doc = check("render", "render", str(CHURN), "--env", "prod", "--json")
    assert doc["documents"][0]["kind"] == "Environment"
    doc = check("graph", "graph", str(CHURN), "--env", "dev", "--json")
    assert {"from": "Dataset/customers", "to": "Model/churn-classifier"} in doc["edges"]


def test_validate_json_carries_the_errors(tmp_path):
    bad = tmp_path / "churn"
    shutil.copytree(CHURN, bad, ignore=shutil.ignore_patterns("build", ".specops"))
    f = bad / "gates" / "auc.yaml"
    f.write_text(f.read_text().replace("model: churn-classifier", "model: churn-clasifier"))
    doc = check("validate", "validate", str(bad), "--json", code=1)
    assert doc["valid"] is False and doc["diagnostics"][0]["code"] == "unresolved-ref"


def test_compile_and_capacity_json(tmp_path):
    out = tmp_path / "build"
    doc = check("compile", "compile", str(SUPPORT), "--out", str(out), "--json")
    assert doc["ok"] and doc["artifacts"] > 10 and doc["written"] == doc["artifacts"] + 1
    doc = check("compile", "compile", str(SUPPORT), "--out", str(out), "--check", "--json")
    assert doc["ok"] and doc["stale"] == []
    doc = check("capacity", "capacity", str(SUPPORT), "--json")
    assert {r["verdict"] for r in doc["reports"]} <= {"ok", "tight"}


def test_plan_apply_drift_state_gate_json(repo, tmp_path):
    doc = check("plan", "plan", str(repo), "--env", "dev", "--json")
    assert doc["changes"] is True
    doc = check("apply", "apply", str(repo), "--env", "dev", "--auto-approve", "--json")
    assert doc["ok"] and "zenml_pipeline.support-llm" in doc["applied"]
    doc = check("plan", "drift", str(repo), "--env", "dev", "--json")
    assert doc["resources"] == []
    doc = check("state-list", "state", "list", str(repo), "--env", "dev", "--json")
    assert "prompt.support-reply" in [r["address"] for r in doc["resources"]]
    doc = check("state-show", "state", "show", "prompt.support-reply", str(repo), "--env", "dev", "--json")
    assert doc["resource"]["type"] == "prompt"
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"pass_rate": 1.0, "rougeL": 0.9, "latency_p95_ms": 800, "regression_p_value": 1.0}))
    doc = check("gate-run", "gate", "run", "support-quality", str(repo), "--env", "dev", "--metrics", str(metrics),
                "--json")
    assert doc["passed"] is True and doc["metrics"]["rougeL"] == 0.9


def test_diff_json(tmp_path):
    top = tmp_path / "r"
    shutil.copytree(CHURN, top, ignore=shutil.ignore_patterns("build", ".specops"))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=top, check=True)
    f = top / "gates" / "auc.yaml"
    f.write_text(f.read_text().replace(">= 0.75", ">= 0.8"))
    doc = check("diff", "diff", str(top), "--base", "HEAD", "--json", code=2)
    assert doc["changed"] is True and doc["resources"]


def test_import_json(tmp_path):
    repo = tmp_path / "churn"
    shutil.copytree(CHURN, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    with aws_test_env(), moto_server() as endpoint:
        c = client("sagemaker", endpoint)
        c.create_pipeline(PipelineName="legacy-churn", RoleArn="arn:aws:iam::123456789012:role/x",
                          PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
                          ClientRequestToken="x" * 40)
        doc = check("import", "import", "sagemaker_pipeline.churn-classifier", "legacy-churn", str(repo),
                    "--env", "prod", "--json", env={"AWS_ENDPOINT_URL": endpoint})
    assert doc["address"] == "sagemaker_pipeline.churn-classifier" and doc["ids"]
