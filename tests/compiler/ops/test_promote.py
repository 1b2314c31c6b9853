"""`specops promote`: against the churn example in a real git repository and MLflow's real SQLite
store. The versions are made with MLflow's own client, tagged the way the register step tags
them (the register step itself is tested in tests/compiler/runtime/test_tracking.py).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.cli import main
from specops.runtime import tracking

ROOT = Path(__file__).resolve().parents[3]
GIT_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    root = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", root, ignore=shutil.ignore_patterns("build", ".specops"))
    (root / ".gitignore").write_text(".specops/\nbuild/\n")  # as `specops init` writes it
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "specs")
    return root


def client_of(repo: Path):
    from mlflow import MlflowClient

    tracking.connect(None, repo)  # creates the embedded store
    uri = tracking.embedded_uri(repo)
    return MlflowClient(uri, uri)


def served_in_staging(repo: Path, *, passed: bool | None) -> tuple[str, str]:
    """A version registered the way the staging pipeline's register step does, with the staging
    alias on it; its churn-auc record: passed, failed, or (None) absent."""
    c = client_of(repo)
    tracking.ensure_registered_model(c, "churn-classifier", "churn-classifier")
    digest = "sha256:" + ("ab" * 32)
    tags = {"specops.digest": digest, "specops.env": "staging"}
    if passed is not None:
        tags["specops.gates.staging"] = json.dumps({"churn-auc": {"passed": passed, "metrics": {"auc": 0.8}}})
    mv = c.create_model_version("churn-classifier", "file:///m", tags=tags)
    c.set_registered_model_alias("churn-classifier", "staging", mv.version)
    return str(mv.version), digest


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_promote_writes_the_pinned_override_on_a_new_branch(repo):
    version, digest = served_in_staging(repo, passed=True)
    head = git(repo, "rev-parse", "HEAD").strip()
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 0, r.output
    branch = f"promote/churn-classifier-prod-v{version}"
    assert f"new branch {branch}" in r.output and "gates passed in staging: churn-auc" in r.output
    # The checkout is untouched: same branch, same HEAD, clean working tree.
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "rev-parse", "HEAD").strip() == head and git(repo, "status", "--porcelain") == ""
    # One commit on top of HEAD, changing only the Model's file.
    assert git(repo, "rev-parse", f"{branch}~1").strip() == head
    assert git(repo, "diff", "--name-only", head, branch).split() == ["models/churn.yaml"]
    # A round-trip edit: the layout and every other line are kept, only the pin is added.
    diff = [ln for ln in git(repo, "diff", "-U0", head, branch).splitlines() if ln[:1] in "+-"
            and not ln.startswith(("+++", "---"))]
    assert diff == ["-    registry: {aliases: [champion]}",
                    f"+    registry: {{aliases: [champion], pin: {{version: {version}, digest: {digest}}}}}"]
    assert "Gates passed in staging for that digest: churn-auc" in git(repo, "log", "-1", "--format=%B", branch)
    # Checked out, the branch validates, and prod fetches the pinned version instead of training.
    wt = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", str(wt), branch)
    resolved = analyze(wt)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    assert resolved.envs["prod"].get("Model", "churn-classifier").spec.registry.pin.version == int(version)
    build = compile_repo(resolved, ["prod", "staging"])
    prod = {a.file: a for a in build.of_env("prod")}
    assert json.loads(prod["params/fetch.json"].data)["digest"] == digest
    assert not any(a.file == "params/fetch.json" for a in build.of_env("staging"))  # staging still trains
    # Again: the branch exists.
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 1 and f"branch '{branch}' already exists; pass --branch NAME" in r.output


def test_promote_json_validates_against_its_schema(repo):
    import jsonschema

    version, digest = served_in_staging(repo, passed=True)
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    schema = json.loads((ROOT / "compiler" / "schemas" / "cli" / "promote.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    # The envelope's format version and the model's version are two fields.
    assert doc["version"] == 1 and doc["model_version"] == version and doc["digest"] == digest
    assert doc["branch"] == f"promote/churn-classifier-prod-v{version}" and doc["gates"] == ["churn-auc"]


def test_promote_refuses_naming_the_gate_that_did_not_pass(repo):
    version, _ = served_in_staging(repo, passed=False)
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 1
    assert (f"specops: error: refusing to promote churn-classifier version {version} (sha256:abababababab…): "
            "gate 'churn-auc' failed in staging for that digest") in r.output
    assert git(repo, "branch", "--list", "promote/*") == ""
    version, _ = served_in_staging(repo, passed=None)  # the alias moved to a version no gate saw
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 1 and f"version {version} " in r.output
    assert "gate 'churn-auc' has not run in staging for that digest" in r.output


def test_promote_a_named_version_that_no_alias_points_at(repo):
    """A monitor's retrain registers a version without moving any alias; `plan` names it and
    `promote --version N` pins it, under the same gate check as a served version."""
    served, _ = served_in_staging(repo, passed=True)
    c = client_of(repo)
    digest = "sha256:" + ("cd" * 32)
    gates = json.dumps({"churn-auc": {"passed": True, "metrics": {"auc": 0.82}}})
    retrained = c.create_model_version("churn-classifier", "file:///r", tags={
        "specops.digest": digest, "specops.env": "staging", "specops.gates.staging": gates}).version
    assert str(tracking.alias_version(c, "churn-classifier", "staging").version) == served  # no alias moved
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod", "--version", str(retrained))
    assert r.exit_code == 0, r.output
    branch = f"promote/churn-classifier-prod-v{retrained}"
    assert f"Promoted churn-classifier version {retrained} ({digest})" in r.output
    assert f"pin: {{version: {retrained}, digest: {digest}}}" in git(repo, "show", f"{branch}:models/churn.yaml")
    log = git(repo, "log", "-1", "--format=%B", branch)
    assert "named by --version" in log and f"--to prod --version {retrained}`" in log
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod", "--version", "99")
    assert r.exit_code == 1 and "--version: churn-classifier has no version 99" in r.output
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod", "--version", "latest")
    assert r.exit_code == 1 and "--version: 'latest' is not a registry version number" in r.output
    failed = c.create_model_version("churn-classifier", "file:///f", tags={
        "specops.digest": "sha256:" + ("ef" * 32), "specops.gates.staging": gates.replace("true", "false")}).version
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod", "--version", str(failed))
    assert r.exit_code == 1 and "gate 'churn-auc' failed in staging for that digest" in r.output


def test_promote_bad_input_is_one_line(repo):
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prd")
    assert r.exit_code == 1
    assert r.output.strip() == "specops: error: --to: unknown environment 'prd'; did you mean 'prod'?"
    r = cli("promote", "churn-clasifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 1 and "unknown model 'churn-clasifier' in environment 'staging'" in r.output
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 1 and "nothing is registered yet" in r.output and "apply staging first" in r.output


def test_promote_with_an_unreachable_registry_retries_then_one_line(repo):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    p = repo / "specops.yaml"
    p.write_text(p.read_text().replace("      host: https://kfp.acme.internal\n",
                                       f"      host: https://kfp.acme.internal\n"
                                       f"      registry: {{trackingUri: 'http://127.0.0.1:{port}'}}\n"))
    r = cli("promote", "churn-classifier", str(repo), "--from", "staging", "--to", "prod")
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output
    assert lines[0].startswith(f"specops: error: MLflow registry at http://127.0.0.1:{port} cannot be reached (")
    assert lines[0].endswith("tried 2 times)")
