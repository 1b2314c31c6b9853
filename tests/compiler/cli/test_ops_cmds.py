"""Terraform's conventions on the live-system commands: exit codes, saved plans applied
exactly as shown (and refused when stale), state repair commands, --refresh-only, --replace,
SPECOPS_ENV, colour, and a missing optional SDK named by its extra.

The pipeline orchestrator is the stand-in described in tests/compiler/ops/ops_fixtures.py (a
real ZenML run costs ~15 s); the GitOps and prompt providers are the real ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from specops.backends import provider as P
from specops.cli import main
from specops.cli.views import render_plan
from specops.ops.plan import Action, Change, Plan
from tests.compiler.ops import fake_pipeline_provider
from tests.compiler.ops.ops_fixtures import FAKE, make_repo


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    monkeypatch.delenv("SPECOPS_ENV", raising=False)
    fake_pipeline_provider._calls.clear()
    return make_repo(tmp_path)


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def state_bytes(repo, env="dev") -> bytes:
    p = repo / ".specops" / "state" / f"{env}.state.json"
    return p.read_bytes() if p.exists() else b""


def one_line_error(r, *needles: str) -> None:
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("specops: error: "), r.output
    for n in needles:
        assert n in lines[0], r.output


def test_usage_errors_exit_1_and_2_means_changes(repo):
    r = cli("drift", str(repo), "--env", "nonexistent")
    assert r.exit_code == 1 and "unknown environment 'nonexistent'" in r.output
    assert cli("plan", str(repo), "--env", "dev", "--no-such-flag").exit_code == 1
    assert cli("no-such-command").exit_code == 1
    assert cli("plan", str(repo), "--env", "dev", "--detailed-exitcode").exit_code == 2


def test_specops_env_is_the_default_environment(repo):
    r = cli("plan", str(repo), "--json", env={"SPECOPS_ENV": "staging"})
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["env"] == "staging"
    assert cli("plan", str(repo)).exit_code == 1  # no --env and no SPECOPS_ENV


def test_saved_plan_is_applied_exactly_as_shown(repo, tmp_path):
    out = tmp_path / "dev.plan"
    r = cli("plan", str(repo), "--env", "dev", "--out", str(out))
    assert r.exit_code == 0, r.output
    shown = json.loads(out.read_text())["plan"]["resources"]
    r = cli("apply", str(out), "--dir", str(repo))
    assert r.exit_code == 0, r.output
    state = json.loads(state_bytes(repo))
    assert sorted(state["resources"]) == sorted(c["address"] for c in shown if c["action"] == "create")
    assert cli("plan", str(repo), "--env", "dev", "--detailed-exitcode").exit_code == 0


def test_a_stale_saved_plan_is_refused_and_nothing_changes(repo, tmp_path):
    first = tmp_path / "first.plan"
    assert cli("plan", str(repo), "--env", "dev", "--out", str(first)).exit_code == 0
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    before = state_bytes(repo)
    one_line_error(cli("apply", str(first), "--dir", str(repo)), "other state")  # state made since
    second = tmp_path / "second.plan"
    assert cli("plan", str(repo), "--env", "dev", "--out", str(second)).exit_code == 0
    prompt = repo / "prompts" / "triage.yaml"
    assert "temperature: 0.0" in prompt.read_text()
    prompt.write_text(prompt.read_text().replace("temperature: 0.0", "temperature: 0.3"))
    one_line_error(cli("apply", str(second), "--dir", str(repo)), "compiled inputs changed")
    assert state_bytes(repo) == before


def test_saved_plan_for_another_env_or_corrupt_is_refused(repo, tmp_path):
    staging = tmp_path / "staging.plan"
    assert cli("plan", str(repo), "--env", "staging", "--out", str(staging)).exit_code == 0
    one_line_error(cli("apply", str(staging), "--dir", str(repo), "--env", "dev"), "for env 'staging', not 'dev'")
    bad = tmp_path / "bad.plan"
    bad.write_text("{not json")
    one_line_error(cli("apply", str(bad), "--dir", str(repo)), "not a saved plan")
    doc = json.loads(staging.read_text())
    doc["version"] = 99
    staging.write_text(json.dumps(doc))
    one_line_error(cli("apply", str(staging), "--dir", str(repo)), "version 99 is not supported")
    assert state_bytes(repo, "staging") == b"" and state_bytes(repo) == b""


def test_state_list_show_rm_mv(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    r = cli("state", "list", str(repo), "--env", "dev")
    assert r.exit_code == 0 and "prompt.support-reply" in r.output.splitlines()
    shown = cli("state", "show", "prompt.support-reply", str(repo), "--env", "dev").output
    assert "type: prompt" in shown and "content_hash: " in shown
    before = state_bytes(repo)
    one_line_error(cli("state", "mv", "prompt.support-reply", "prompt.ticket-triage", str(repo), "--env", "dev"),
                   "already exists")
    one_line_error(cli("state", "rm", "prompt.support-rply", str(repo), "--env", "dev"),
                   "no resource 'prompt.support-rply'", "did you mean 'prompt.support-reply'")
    assert state_bytes(repo) == before
    assert cli("state", "mv", "prompt.support-reply", "prompt.reply", str(repo), "--env", "dev").exit_code == 0
    doc = json.loads(state_bytes(repo))
    assert "prompt.reply" in doc["resources"] and "prompt.support-reply" not in doc["resources"]
    assert doc["serial"] == json.loads(before)["serial"] + 1
    backups = sorted((repo / ".specops" / "state").glob("dev.state.json.*.bak"))
    assert backups and json.loads(backups[-1].read_bytes()) == json.loads(before)  # no version lost
    assert cli("state", "rm", "prompt.reply", str(repo), "--env", "dev").exit_code == 0
    assert "prompt.reply" not in json.loads(state_bytes(repo))["resources"]


def test_replace_of_an_unknown_address_is_one_line(repo):
    one_line_error(cli("plan", str(repo), "--env", "dev", "--replace", "prompt.nope"), "--replace prompt.nope")
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    before = state_bytes(repo)
    one_line_error(cli("apply", str(repo), "--env", "dev", "--auto-approve", "--replace", "zenml_pipeline.nope"),
                   "no such resource", "did you mean 'zenml_pipeline.support-llm'")
    assert state_bytes(repo) == before


def test_replace_forces_the_action_without_changes(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    r = cli("plan", str(repo), "--env", "dev", "--replace", "zenml_pipeline.support-llm", "--json")
    changed = [(c["address"], c["action"]) for c in json.loads(r.stdout)["resources"] if c["action"] != "no-op"]
    assert changed == [("zenml_pipeline.support-llm", "replace")]
    calls = fake_pipeline_provider._calls.get("zenml_pipeline.support-llm", 0)
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve", "--replace", "zenml_pipeline.support-llm")
    assert r.exit_code == 0, r.output
    assert fake_pipeline_provider._calls["zenml_pipeline.support-llm"] == calls + 1


def test_refresh_only_accepts_live_values_into_state(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    from mlflow import MlflowClient

    from specops.runtime import tracking

    c = MlflowClient(tracking.embedded_uri(repo), tracking.embedded_uri(repo))
    other = c.register_prompt("support-reply", "edited by hand {{ product }}")
    c.set_prompt_alias("support-reply", "dev-latest", other.version)  # someone moved the label in MLflow
    assert cli("drift", str(repo), "--env", "dev").exit_code == 2
    r = cli("plan", str(repo), "--env", "dev", "--refresh-only", "--detailed-exitcode")
    assert r.exit_code == 2 and "accept" in r.output
    r = cli("apply", str(repo), "--env", "dev", "--refresh-only", "--auto-approve")
    assert r.exit_code == 0 and "1 resource(s) accepted" in r.output, r.output
    assert cli("drift", str(repo), "--env", "dev").exit_code == 0  # state now records what is live
    r = cli("plan", str(repo), "--env", "dev", "--json")  # and the specs would put the label back
    assert [c["action"] for c in json.loads(r.stdout)["resources"] if c["address"].startswith("prompt.")
            and c["action"] != "no-op"] == ["update"]


def test_colour_only_on_request():
    p = Plan("dev", "local", False, None, {"drift": "report", "prune": False, "require_gates": False},
             [Change("prompt.a", "prompt", "a", Action.CREATE)])
    assert "\x1b[32m" in render_plan(p, color=True) and "\x1b[" not in render_plan(p, color=False)


def test_no_color_flag_and_env(repo):
    for r in (cli("--no-color", "plan", str(repo), "--env", "dev"), cli("plan", str(repo), "--env", "dev",
              "--no-color"), cli("plan", str(repo), "--env", "dev", env={"NO_COLOR": "1"})):
        assert r.exit_code == 0 and "\x1b[" not in r.output


def test_a_missing_optional_sdk_names_the_extra(repo, monkeypatch):
    """zenml is installed here: hide it the way a core install lacks it."""
    monkeypatch.delitem(P.PROVIDER_OVERRIDES, "zenml_pipeline")
    monkeypatch.setitem(sys.modules, "zenml", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "zenml" else real(n, *a))
    r = cli("plan", str(repo), "--env", "dev")
    one_line_error(r, "pip install 'specops[zenml]'")


def test_apply_of_a_saved_plan_with_no_repo_is_one_line(tmp_path):
    p = tmp_path / "x.plan"
    p.write_text(json.dumps({"format": "specops-plan", "version": 1}))
    one_line_error(cli("apply", str(p)), "malformed")


def test_shell_completion_lists_commands():
    r = CliRunner().invoke(main, [], env={"_SPECOPS_COMPLETE": "bash_complete", "COMP_WORDS": "specops pl",
                                          "COMP_CWORD": "1"}, prog_name="specops")
    assert "plan" in r.output


# ---- specops show ---------------------------------------------------------------------------

SHOW_SCHEMA = Path(__file__).resolve().parents[3] / "compiler" / "schemas" / "cli" / "show.schema.json"


def test_show_renders_saved_plans(repo, tmp_path):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    p = repo / "prompts" / "support-reply.yaml"
    p.write_text(p.read_text().replace("You are", "You are a kind"))
    dev, staging = tmp_path / "dev.plan", tmp_path / "staging.plan"
    assert cli("plan", str(repo), "--env", "dev", "--out", str(dev)).exit_code == 0
    assert cli("plan", str(repo), "--env", "staging", "--out", str(staging)).exit_code == 0

    md = cli("show", str(dev), str(staging), "--format", "markdown")
    assert md.exit_code == 0, md.output
    text = md.output
    assert text.startswith("<!-- specops-plan -->\n")
    assert "2 of 2 environment(s) would change: `dev`, `staging`." in text, text
    row = next(line for line in text.splitlines() if line.startswith("| `dev`"))
    assert row.endswith(" to update** |"), row
    assert "kind" in text  # the field diff of the prompt is in dev's block
    assert text.count("<details open>") == 2

    doc = json.loads(cli("show", str(dev), "--json").output)
    jsonschema.Draft202012Validator(json.loads(SHOW_SCHEMA.read_text())).validate(doc)
    assert doc["changes"] is True and [p["env"] for p in doc["plans"]] == ["dev"]
    assert cli("show", str(dev), "--detailed-exitcode").exit_code == 2
    plain = cli("show", str(dev)).output
    assert plain.startswith("env dev (target local)") and "~" in plain


def test_show_refuses_what_is_not_a_saved_plan(tmp_path):
    bad = tmp_path / "x.plan"
    bad.write_text("not json")
    r = cli("show", str(bad))
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        f"specops: error: {bad}: not a saved plan (not JSON); make one with `specops plan --out FILE`"]
