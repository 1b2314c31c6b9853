"""Rules that read the plan (checked by `plan`, refused by `apply`) and the audit trail that
every apply appends to (`specops history`), on local state and on S3 state served by moto on
127.0.0.1.

The pipeline orchestrator is the stand-in of tests/compiler/ops/ops_fixtures.py (a real ZenML
run costs ~15 s); the GitOps and prompt providers, git and the state stores are real.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from specops.backends import provider as P
from specops.cli import main
from specops.ops.audit import CI_IDENTITIES
from tests.compiler.ops import fake_pipeline_provider
from tests.compiler.ops.ops_fixtures import FAKE, make_repo
from tests.moto_server import REGION, aws_test_env, client, moto_server

SCHEMA = Path(__file__).resolve().parents[3] / "compiler" / "schemas" / "cli" / "history.schema.json"
NO_PROMPTS = """\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: no-new-prompts}
environments: [dev]
spec:
  expression: "plan.changes.all(c, c.type != 'prompt' || c.action != 'create')"
  message: prompts are created by the platform team only
"""


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    monkeypatch.delenv("SPECOPS_ENV", raising=False)
    for var, _, commit_var in CI_IDENTITIES:  # this very test may run in CI
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(commit_var, raising=False)
    fake_pipeline_provider._calls.clear()
    root = make_repo(tmp_path)
    (root / ".gitignore").write_text(".specops/\n")  # as `specops init` writes it: state is not committed
    git = ["git", "-C", str(root), "-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "config", "user.name", "Ada Lovelace"], check=True)
    subprocess.run(["git", "-C", str(root), "config", "user.email", "ada@example.com"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "specs"], check=True)
    return root


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def head(root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def history_json(root: Path, env: str = "dev", *extra: str) -> dict:
    r = cli("history", str(root), "--env", env, "--json", *extra)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
    return doc


def test_a_rule_on_the_plan_fails_plan_and_apply_refuses_it(repo, tmp_path):
    (repo / "rules").mkdir()
    (repo / "rules" / "prompts.yaml").write_text(NO_PROMPTS)
    assert cli("validate", str(repo)).exit_code == 0  # it reads the plan: not checked here
    saved = tmp_path / "dev.plan"
    r = cli("plan", str(repo), "--env", "dev", "--out", str(saved))
    assert r.exit_code == 1 and not saved.exists()
    assert "prompt.support-reply" in r.output  # the plan is shown, then what breaks the rule
    assert ("rules/prompts.yaml:6:15: error: rule 'no-new-prompts' fails for env 'dev': prompts are created "
            "by the platform team only [policy]") in r.output
    r = cli("plan", str(repo), "--env", "dev", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["diagnostics"][0]["code"] == "policy"
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 1 and "apply refused: the plan breaks 1 policy rule(s)" in r.output
    assert not (repo / ".specops" / "state" / "dev.state.json").exists()
    [refused] = history_json(repo)["entries"]
    assert refused["result"] == "refused" and "policy rule" in refused["error"] and refused["applied"] == []
    # the other environments are outside the rule
    assert cli("plan", str(repo), "--env", "staging").exit_code == 0


def test_every_apply_is_recorded_with_author_commit_changes_and_result(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0  # nothing to do
    doc = history_json(repo)
    second, first = doc["entries"]  # newest first
    sha = head(repo)
    assert first["who"] == "Ada Lovelace <ada@example.com>" and first["via"] == "git"
    assert first["commit"] == sha and first["dirty"] is False and first["result"] == "applied"
    assert {"address": "prompt.support-reply", "action": "create"} in first["changes"]
    assert sorted(first["applied"]) == sorted(c["address"] for c in first["changes"])
    assert first["state_serial"] >= 1
    assert second["result"] == "no-changes" and second["changes"] == []
    text = cli("history", str(repo), "--env", "dev").output.splitlines()
    assert len(text) == 2 and sha[:12] in text[1] and "Ada Lovelace" in text[1] and "applied" in text[1]
    assert history_json(repo, "dev", "--limit", "1")["entries"] == [second]


def test_a_ci_identity_wins_and_a_dirty_tree_is_said(repo, monkeypatch):
    (repo / "notes.txt").write_text("uncommitted")
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    monkeypatch.setenv("GITHUB_ACTOR", "deploy-bot")
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    r = cli("apply", str(repo), "--env", "staging", "--auto-approve")
    assert r.exit_code == 1 and "blocked by gates" in r.output  # staging requires gates no run has passed
    [dev] = history_json(repo, "dev")["entries"]
    assert dev["dirty"] is True and dev["who"] == "Ada Lovelace <ada@example.com>"
    [staging] = history_json(repo, "staging")["entries"]
    assert (staging["who"], staging["via"], staging["commit"]) == ("deploy-bot", "github-actions", "f" * 40)
    assert staging["result"] == "blocked" and staging["blocked"] and staging["applied"]


def test_history_is_rotated_past_its_bound_and_a_corrupt_one_is_refused(repo, monkeypatch):
    monkeypatch.setattr("specops.state.history.KEEP_HISTORY", 2)
    for _ in range(3):
        assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    entries = history_json(repo)["entries"]
    assert [e["result"] for e in entries] == ["no-changes", "no-changes"]  # the first apply rotated out
    path = repo / ".specops" / "state" / "dev.history.json"
    path.write_text('{"env": "prod", "version": 1, "entries": []}')
    r = cli("history", str(repo), "--env", "dev")
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "not an apply history of env 'dev'" in r.output
    # apply still applies, warns, and leaves the foreign document as it was
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0 and "warning: the apply history of env 'dev' was not written" in r.output
    assert json.loads(path.read_text())["env"] == "prod"


def test_history_on_s3_state(repo, monkeypatch):
    with aws_test_env(), moto_server() as url:
        client("s3", url).create_bucket(Bucket="specops-state")
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        project = repo / "specops.yaml"
        project.write_text(project.read_text().replace(
            "state: {backend: local, path: .specops/state}",
            f"state: {{backend: s3, bucket: specops-state, prefix: team/state, region: {REGION}}}"))
        assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
        keys = sorted(o["Key"] for o in client("s3", url).list_objects_v2(Bucket="specops-state")["Contents"])
        assert "team/state/dev.history.json" in keys
        [e] = history_json(repo)["entries"]
        assert e["result"] == "applied" and e["who"] == "Ada Lovelace <ada@example.com>"
        assert not (repo / ".specops" / "state").exists()
