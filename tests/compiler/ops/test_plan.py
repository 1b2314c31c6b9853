"""`specops plan` / `drift`: actions, field diffs, targeting, JSON, exit codes, gates.

Runs the CLI in-process against a copy of examples/support-assistant on one local target;
the gitops and prompt providers are the real ones; the pipeline orchestrator is the stand-in
described in ops_fixtures.py (the real ZenML provider runs in the slow tests).
"""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from specops.backends import provider as P
from specops.cli import main
from specops.ops.plan import topo_order
from specops.structdiff import file_diffs

from .ops_fixtures import FAKE, make_repo


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    for k in ("SPECOPS_FAKE_GATES", "SPECOPS_FAKE_FAIL", "SPECOPS_FAKE_THROTTLE", "SPECOPS_FAKE_SLOW"):
        monkeypatch.delenv(k, raising=False)
    return make_repo(tmp_path)


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_plan_fresh_env_creates_everything_in_dependency_order(repo):
    r = cli("plan", str(repo), "--env", "staging", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["version"] == 1 and doc["env"] == "staging" and doc["state_serial"] is None
    addrs = [x["address"] for x in doc["resources"]]
    # dependencies first; among what is ready, names break ties. support-reply's label move
    # waits for the pipeline that runs its gate (prompts promote like models).
    # The support-live monitor's PrometheusRule is a GitOps file like the serving target's manifests.
    assert addrs == ["k8s_manifests.monitor-support-live", "prompt.ticket-triage", "zenml_pipeline.support-llm",
                     "k8s_manifests.support-llm", "prompt.support-reply", "registered_model.support-llm"]
    assert {x["action"] for x in doc["resources"]} == {"create"}
    rule = doc["resources"][0]
    assert rule["spec"] == "Monitor/support-live" and rule["depends_on"] == [] and rule["gates"] == []
    k8s = doc["resources"][3]
    assert k8s["depends_on"] == ["zenml_pipeline.support-llm"]
    assert [g["gate"] for g in k8s["gates"]] == ["support-quality"]
    prompt = doc["resources"][4]
    assert prompt["depends_on"] == ["zenml_pipeline.support-llm"]
    assert [(g["gate"], g["status"]) for g in prompt["gates"]] == [("support-quality", "pending")]
    assert [g["gate"] for g in doc["resources"][1]["gates"]] == []  # ticket-triage: no gate over it
    # The model's staging aliases move after its pipeline, held by the gates that block staging.
    model = doc["resources"][5]
    assert model["depends_on"] == ["zenml_pipeline.support-llm"]
    assert [(g["gate"], g["status"]) for g in model["gates"]] == [("support-quality", "pending")]
    assert doc["summary"]["create"] == 6 and doc["changes"] is True


def test_prometheus_rule_is_applied_to_gitops_and_a_hand_edit_is_drift(repo):
    """The PrometheusRule of a monitor on a Kubernetes serving target is `k8s_manifests.monitor-<name>`:
    apply writes it into the GitOps directory beside the serving manifests (the plain rule file and
    the dashboard are not Kubernetes objects and stay out), and an edit there is drift."""
    addr = "k8s_manifests.monitor-support-live"
    r = cli("apply", str(repo), "--env", "staging", "--auto-approve", "--target", addr)
    assert r.exit_code == 0, r.output
    folder = repo / ".specops" / "gitops" / "staging" / "monitor-support-live"
    assert sorted(p.name for p in folder.iterdir()) == ["prometheusrule.yaml"]
    assert yaml.safe_load((folder / "prometheusrule.yaml").read_text())["kind"] == "PrometheusRule"
    assert cli("plan", str(repo), "--env", "staging", "--target", addr, "--detailed-exitcode").exit_code == 0
    rule = folder / "prometheusrule.yaml"
    rule.write_text(rule.read_text().replace("severity: warning", "severity: info"))
    d = cli("drift", str(repo), "--env", "staging")
    assert d.exit_code == 2 and addr in d.output, d.output


def test_plan_json_is_byte_identical(repo):
    a = cli("plan", str(repo), "--env", "prod", "--json").output
    b = cli("plan", str(repo), "--env", "prod", "--json").output
    assert a == b and str(repo) not in a


def test_detailed_exitcode_and_empty_plan_after_apply(repo):
    assert cli("plan", str(repo), "--env", "dev", "--detailed-exitcode").exit_code == 2
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    r = cli("plan", str(repo), "--env", "dev", "--detailed-exitcode")
    assert r.exit_code == 0, r.output
    assert "No changes" in r.output


def test_editing_one_spec_shows_exactly_that_update(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    p = repo / "prompts" / "triage.yaml"
    p.write_text(p.read_text().replace("temperature: 0.0", "temperature: 0.3"))
    r = cli("plan", str(repo), "--env", "dev", "--json", "--detailed-exitcode")
    assert r.exit_code == 2
    doc = json.loads(r.output)
    changed = [x for x in doc["resources"] if x["action"] != "no-op"]
    assert [(x["address"], x["action"]) for x in changed] == [("prompt.ticket-triage", "update")]
    assert changed[0]["diffs"] == [{"path": "prompt.json:parameters.temperature", "op": "changed", "before": 0.0,
                                   "after": 0.3}]
    text = cli("plan", str(repo), "--env", "dev").output
    assert "~ prompt.json:parameters.temperature: 0.0 -> 0.3" in text


def test_target_limits_plan_to_the_resource_and_its_dependencies(repo):
    doc = json.loads(cli("plan", str(repo), "--env", "staging", "--json",
                         "--target", "k8s_manifests.support-llm").output)
    assert [x["address"] for x in doc["resources"]] == ["zenml_pipeline.support-llm", "k8s_manifests.support-llm"]
    r = CliRunner().invoke(main, ["plan", str(repo), "--env", "staging", "--target", "k8s_manifests.support-lm"])
    assert r.exit_code == 1
    assert "no such resource" in r.output and "did you mean 'k8s_manifests.support-llm'" in r.output
    assert "Traceback" not in r.output


def test_removed_spec_is_deleted_with_prune_and_orphaned_without(repo):
    for env in ("dev", "staging"):
        assert cli("apply", str(repo), "--env", env, "--auto-approve").exit_code in (0, 1)
    (repo / "prompts" / "triage.yaml").unlink()
    dev = json.loads(cli("plan", str(repo), "--env", "dev", "--json").output)
    assert [(x["address"], x["action"]) for x in dev["resources"] if x["action"] != "no-op"] == \
        [("prompt.ticket-triage", "delete")]
    staging = cli("plan", str(repo), "--env", "staging", "--json", "--detailed-exitcode")
    rows = [(x["address"], x["action"]) for x in json.loads(staging.output)["resources"]]
    assert ("prompt.ticket-triage", "orphan") in rows


def _mlflow(repo):
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / '.specops' / 'mlflow' / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def test_prompt_registry_edit_is_drift(repo):
    """A prompt label moved with MLflow's own client is drift, named by its alias."""
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    assert cli("drift", str(repo), "--env", "dev").exit_code == 0
    client = _mlflow(repo)
    other = client.register_prompt("support-reply", "edited in the MLflow UI {{ product }}")
    client.set_prompt_alias("support-reply", "dev-latest", other.version)  # the label moved by hand
    r = cli("drift", str(repo), "--env", "dev")
    assert r.exit_code == 2, r.output
    assert "prompt.support-reply" in r.output
    assert f'prompt.json:aliases.dev-latest: "v4" -> "MLflow version {other.version} (not registered by specops)"' in r.output
    # dev reconciles: the plan overwrites the live change, apply restores it.
    doc = json.loads(cli("plan", str(repo), "--env", "dev", "--json").output)
    row = next(x for x in doc["resources"] if x["address"] == "prompt.support-reply")
    assert row["action"] == "update" and row["drift"] is True
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    assert client.get_prompt_version_by_alias("support-reply", "dev-latest").tags["specops.version"] == "4"
    assert cli("drift", str(repo), "--env", "dev").exit_code == 0


def test_refresh_false_does_not_see_drift(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    _mlflow(repo).delete_prompt_alias("support-reply", "dev-latest")
    assert cli("plan", str(repo), "--env", "dev", "--detailed-exitcode").exit_code == 2
    r = cli("plan", str(repo), "--env", "dev", "--detailed-exitcode", "--refresh=false")
    assert r.exit_code == 0 and "not refreshed" in r.output


def test_plan_shows_blocked_rollout_until_gate_passes(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECOPS_FAKE_GATES", "support-quality=fail")
    r = cli("apply", str(repo), "--env", "staging", "--auto-approve")
    assert r.exit_code == 1
    # The rollout and the prompt's label move both wait for the gate that failed.
    assert "blocked by gates (k8s_manifests.support-llm, prompt.support-reply, registered_model.support-llm)" in r.output
    state = json.loads((repo / ".specops" / "state" / "staging.state.json").read_text())
    assert "prompt.support-reply" not in state["resources"]
    assert not (repo / ".specops" / "gitops" / "staging" / "support-llm").exists()
    doc = json.loads(cli("plan", str(repo), "--env", "staging", "--json").output)
    row = next(x for x in doc["resources"] if x["address"] == "k8s_manifests.support-llm")
    assert row["blocked"] is True and row["gates"][0]["status"] == "failed"
    # An externally computed eval result for the same model version unblocks it.
    m = tmp_path / "metrics.json"
    m.write_text(json.dumps({"pass_rate": 0.9, "rougeL": 0.47, "latency_p95_ms": 900, "regression_p_value": 1.0}))
    r = cli("gate", "run", "support-quality", str(repo), "--env", "staging", "--metrics", str(m))
    assert r.exit_code == 0, r.output
    assert "gate support-quality: passed" in r.output
    doc = json.loads(cli("plan", str(repo), "--env", "staging", "--json").output)
    row = next(x for x in doc["resources"] if x["address"] == "k8s_manifests.support-llm")
    assert row["blocked"] is False and row["gates"][0]["status"] == "passed"
    row = next(x for x in doc["resources"] if x["address"] == "prompt.support-reply")
    assert row["blocked"] is False and row["gates"][0]["status"] == "passed"
    # The rollouts land; the model's aliases cannot: the run its gate stopped registered nothing.
    r = cli("apply", str(repo), "--env", "staging", "--auto-approve")
    assert r.exit_code == 1
    assert ("apply stopped at registered_model.support-llm: support-llm: a version registered by the pipeline of "
            "spec ") in r.output and "is not in the registry (did its pipeline run and pass its gates?)" in r.output
    assert (repo / ".specops" / "gitops" / "staging" / "support-llm" / "deployment.yaml").is_file()
    # A run whose gate passes registers the version; then its aliases move and nothing is left.
    monkeypatch.setenv("SPECOPS_FAKE_GATES", "support-quality=pass")
    r = cli("apply", str(repo), "--env", "staging", "--auto-approve", "--replace", "zenml_pipeline.support-llm")
    assert r.exit_code == 0, r.output
    assert cli("plan", str(repo), "--env", "staging", "--detailed-exitcode").exit_code == 0


def test_gate_run_with_failing_metrics_records_failure(repo, tmp_path):
    m = tmp_path / "metrics.json"
    m.write_text(json.dumps({"rougeL": 0.30, "latency_p95_ms": 900}))
    r = CliRunner().invoke(main, ["gate", "run", "support-quality", str(repo), "--env", "staging", "--metrics", str(m)])
    assert r.exit_code == 1
    assert "rougeL = 0.3 < 0.42" in r.output
    state = json.loads((repo / ".specops" / "state" / "staging.state.json").read_text())
    assert state["gates"]["support-quality"]["passed"] is False


def test_plan_field_diffs_come_from_the_one_structural_engine():
    d = file_diffs({"f.json": {"a": 1, "b": {"c": 2}, "s": [{"name": "x", "v": 1}]}},
                   {"f.json": {"a": 1, "b": {"c": 3}, "s": [{"name": "x", "v": 2}]}, "g.yaml": {}})
    assert [(x.path, x.before, x.after, x.op) for x in d] == [
        ("f.json:b.c", 2, 3, "changed"), ("f.json:s[name=x].v", 1, 2, "changed"), ("g.yaml:", None, "(file)", "added")]


def test_topo_order_puts_dependencies_first():
    assert topo_order({"b": ["a"], "a": [], "c": ["b"], "0": []}) == ["0", "a", "b", "c"]


def test_align_compares_only_what_the_provider_reads_back():
    from specops.ops.plan import align

    recorded = {"definition.json": {"Steps": [1], "Version": "1"}, "params/train.json": {"a": 1}}
    assert align(recorded, {"definition.json": {"Steps": [2]}}) == \
        ({"definition.json": {"Steps": [1], "Version": "1"}}, {"definition.json": {"Steps": [2]}})
    # a provider returning the document itself is matched to the file it belongs to
    assert align(recorded, {"Steps": [2], "Version": "1"}) == \
        ({"definition.json": recorded["definition.json"]}, {"definition.json": {"Steps": [2], "Version": "1"}})


def test_import_of_an_unsupported_address_is_one_line(repo):
    r = CliRunner().invoke(main, ["import", "zenml_pipeline.x", "abc", str(repo), "--env", "dev"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("specops: error: ")


def test_unknown_env_is_a_usage_error(repo):
    r = CliRunner().invoke(main, ["plan", str(repo), "--env", "prd"])
    assert r.exit_code == 1 and "unknown environment 'prd'" in r.output and "did you mean 'prod'" in r.output


def test_plan_shows_serving_capacity(tmp_path) -> None:
    """Issue 4: the capacity verdict of each serving target is in the plan, text and JSON."""
    import json

    from click.testing import CliRunner

    from specops.cli import main
    from tests.compiler.ops.ops_fixtures import make_repo

    root = make_repo(tmp_path)
    text = CliRunner().invoke(main, ["plan", str(root), "--env", "staging", "--refresh=false"]).output
    assert "capacity ok: fits: 14.96 GiB weights (8.03 B params" in text
    doc = json.loads(CliRunner().invoke(main, ["plan", str(root), "--env", "staging", "--refresh=false", "--json"]).stdout)
    assert doc["capacity"]["support-llm"]["verdict"] == "ok"


def test_pipeline_of_a_model_turned_serve_only_is_deleted_with_prune_and_orphaned_without(repo):
    """Dropping `finetune` (and the gates that evaluated the model) leaves nothing to run: the
    pipeline disappears from the build, and plan treats it like any removed resource."""
    for env in ("dev", "staging"):
        assert cli("apply", str(repo), "--env", env, "--auto-approve").exit_code in (0, 1)
    model = repo / "models" / "support-llm.yaml"
    text = model.read_text()
    start, end = text.index("    finetune:"), text.index("    promptField:")
    model.write_text(text[:start] + text[end:])
    for gate in (repo / "gates").glob("*.yaml"):
        gate.unlink()
    st = repo / "serving" / "support-llm.yaml"
    st.write_text(st.read_text().replace("  gates: [support-quality]\n", "")
                  .replace("    gates: [support-quality, support-no-regression]\n", ""))
    proj = repo / "specops.yaml"
    # ungated prod serving on purpose: the built-in rule that refuses it is off
    proj.write_text(proj.read_text().replace("requireGates: true, ", "")
                    + "  rules: {disable: [prod-serving-names-gates]}\n")
    dev = json.loads(cli("plan", str(repo), "--env", "dev", "--json").output)
    assert ("zenml_pipeline.support-llm", "delete") in [(x["address"], x["action"]) for x in dev["resources"]]
    staging = json.loads(cli("plan", str(repo), "--env", "staging", "--json").output)
    assert ("zenml_pipeline.support-llm", "orphan") in [(x["address"], x["action"]) for x in staging["resources"]]
