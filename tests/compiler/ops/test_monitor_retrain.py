"""The loop closed on the churn example, as a new user runs it: `specops monitor run` on an
unshifted window triggers nothing; on a window with shifted tenure and charges it breaches,
records the breach in state, retrains on ZenML's local stack (a new run identified by its
trigger, its gate run, a new registered version, no alias moved), and `plan` shows the
promotion that follows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from specops.checks import analyze
from specops.cli.app import main
from specops.runtime import tracking
from specops.state import State, open_store
from tests.compiler.runtime.test_runtime_monitor import shifted

ROOT = Path(__file__).resolve().parents[3]
GIT_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com"}
PLAN_SCHEMA = ROOT / "compiler" / "schemas" / "cli" / "plan.schema.json"


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


def _state(repo: Path) -> dict:
    return json.loads((repo / ".specops" / "state" / "dev.state.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_breach_retrains_and_plan_shows_the_promotion(tmp_path: Path) -> None:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    code, out = _cli("apply", str(repo), "--env", "dev", "--auto-approve")  # dev serves version 1
    assert code == 0, out
    served = {"dev": "1", "dev-candidate": "1"}
    assert tracking.registered_aliases(tracking.connect(None, repo), "churn-classifier") == served

    code, out = _cli("monitor", "run", "churn-drift", str(repo), "--env", "dev")
    assert code == 0, out
    assert "monitor churn-drift (dev): ok" in out and "retrain" not in out
    assert not (repo / ".specops" / "state" / "dev.state.json").exists() or "monitors" not in _state(repo)

    window = shifted(repo / "data" / "production.csv", tmp_path / "june.csv")  # outside the repo: staged
    code, out = _cli("monitor", "run", "churn-drift", str(repo), "--env", "dev", "--data", str(window), "--json")
    assert code == 2, out
    doc = json.loads(out[out.index("{"):])
    assert doc["breached"] is True
    retrain = doc["retrain"]
    assert retrain["status"] == "succeeded", retrain
    assert retrain["data"] == "window" and retrain["gates"] == {"churn-auc": "completed"}
    version = retrain["registered"]["version"]
    assert version == f"retrain-{retrain['run'][:12]}" and retrain["registered"]["aliases"] == []
    assert retrain["pipeline"] == f"churn-classifier-retrain-{retrain['run'][:8]}"
    assert retrain["trigger"]["monitor"] == "churn-drift" and len(retrain["trigger"]["window"]) == 64

    # The registry holds the new version; no alias moved.
    home = repo / ".specops" / "registry" / "churn-classifier"
    assert (home / version / "registration.json").is_file()
    assert not (home / "aliases.json").exists()
    # ... nor in MLflow: the new version 2 is there, dev still serves version 1.
    assert retrain["registered"]["mlflow_version"] == "2"
    assert tracking.registered_aliases(tracking.connect(None, repo), "churn-classifier") == served
    # The retrain trained on the breached window (staged inside the repo by its content hash).
    run_dir = repo / ".specops" / "runs" / "dev" / retrain["pipeline"]
    steps = {s["name"]: s for s in json.loads((run_dir / "result.json").read_text(encoding="utf-8"))["steps"]}
    assert steps["check-customers"]["result"]["rows"] == 500  # the window's rows, not the 1,000 pinned ones
    assert steps["check-customers"]["result"]["sha256"] == retrain["trigger"]["window"]
    assert "deploy" not in " ".join(steps)

    # State records the breach and its retrain run.
    breaches = _state(repo)["monitors"]["churn-drift"]["breaches"]
    assert len(breaches) == 1
    b = breaches[0]
    assert [c["name"] for c in b["checks"]] == ["drift:share"]
    assert b["retrain"]["run"] == retrain["run"] and b["window"]["sha256"] == retrain["trigger"]["window"]

    code, out = _cli("plan", str(repo), "--env", "dev", "--json")
    plan = json.loads(out)
    assert plan["promotions"] == [{
        # shown next to the model's registry aliases (issue 16's registered_model resource)
        "address": "registered_model.churn-classifier", "aliases": [], "breach_time": b["time"],
        "gates": {"churn-auc": "completed"}, "model": "churn-classifier", "monitor": "churn-drift",
        "registry": "churn-classifier", "run": retrain["run"], "version": version, "mlflow_version": "2",
        # the command that proposes it, to the next environment that deploys the model
        "command": "specops promote churn-classifier --from dev --to staging --version 2"}]
    assert not any(r["drift"] or r["action"] != "no-op" for r in plan["resources"])  # nothing moved behind git
    code, out = _cli("plan", str(repo), "--env", "dev")
    assert f"promotion pending: Model/churn-classifier (registered_model.churn-classifier) -> churn-classifier@{version}" in out
    command = "specops promote churn-classifier --from dev --to staging --version 2"
    assert f"; propose it with `{command}`" in out

    # The command proposes exactly that version, as a git change.
    (repo / ".gitignore").write_text(".specops/\nbuild/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "specs"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **GIT_ENV})
    code, out = _cli(*command.split()[1:], str(repo))
    assert code == 0, out
    pinned = subprocess.run(["git", "show", "promote/churn-classifier-staging-v2:models/churn.yaml"], cwd=repo,
                            check=True, capture_output=True, text=True).stdout
    assert "pin: {version: 2, digest: sha256:" in pinned


def _breached(repo: Path, env: str) -> None:
    """State holding one breach whose retrain registered a version (as `monitor run` records it)."""
    store = open_store(analyze(repo).project.state, env, repo)
    state = State.new(env)
    state.monitors["churn-drift"] = {"breaches": [{
        "time": "2026-12-01T10:00:00Z", "checks": [{"name": "drift:share"}], "window": {"sha256": "0" * 64},
        "retrain": {"run": "a" * 64, "model": "churn-classifier", "status": "succeeded",
                    "gates": {"churn-auc": "completed"},
                    "registered": {"registry": "churn-classifier", "version": "retrain-aaaaaaaaaaaa", "aliases": [],
                                   "mlflow_version": "2"}}}]}
    with store.lock("test"):
        store.write(state)


@pytest.mark.parametrize("env, command", [("dev", "specops promote churn-classifier --from dev --to staging --version 2"),
                                          ("prod", None)])
def test_the_pending_promotion_names_the_command_that_proposes_it(tmp_path: Path, env: str, command: str | None) -> None:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    _breached(repo, env)
    code, out = _cli("plan", str(repo), "--env", env, "--refresh=false", "--json")
    assert code == 0, out
    doc = json.loads(out)
    jsonschema.Draft202012Validator(json.loads(PLAN_SCHEMA.read_text())).validate(doc)
    assert [p["command"] for p in doc["promotions"]] == [command]
    code, out = _cli("plan", str(repo), "--env", env, "--refresh=false")
    line = next(ln for ln in out.splitlines() if "promotion pending" in ln)
    if command:
        assert line.endswith(f"; gates: churn-auc completed; propose it with `{command}`")
    else:  # prod is the last environment: nothing to pin it in
        assert line.endswith("; no environment after prod deploys Model/churn-classifier, so `specops promote` has "
                             "nowhere to pin it")
