"""The `mlflow` model registry provider against MLflow's real SQLite store (the embedded default,
`.specops/mlflow/`), read back and edited with MLflow's own `MlflowClient`: prompts registered
with their labels as aliases, a model alias moved out of band is drift (restored under
`drift: reconcile`, refused under `drift: report`), and the home-made prompt registry of older
specops versions is migrated by the first apply, with a notice.

The pipeline orchestrator is the stand-in of tests/compiler/ops/ops_fixtures.py (a real ZenML
run costs ~15 s; the slow test in tests/compiler/ops/test_apply.py runs the real one): like the
compiled register step, it registers the version in the same MLflow store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.backends import provider as P
from specops.backends.provider import content_hash, json_bytes
from specops.cli import main
from specops.runtime import tracking
from tests.compiler.ops import fake_pipeline_provider
from tests.compiler.ops.ops_fixtures import FAKE, make_repo


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    for k in ("SPECOPS_FAKE_GATES", "SPECOPS_FAKE_FAIL", "SPECOPS_FAKE_THROTTLE", "SPECOPS_FAKE_SLOW"):
        monkeypatch.delenv(k, raising=False)
    fake_pipeline_provider._calls.clear()
    return make_repo(tmp_path)


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def client_of(repo: Path):
    from mlflow import MlflowClient

    uri = tracking.embedded_uri(repo)
    return MlflowClient(uri, uri)


def test_prompts_are_registered_verbatim_with_their_labels_as_aliases(repo):
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    c = client_of(repo)
    pv = c.get_prompt_version_by_alias("support-reply", "dev-latest")
    assert c.get_prompt_version_by_alias("support-reply", "dev").version == pv.version
    # The template is stored as written (Jinja2, rendered by specops, not by MLflow's format()).
    assert pv.tags["specops.format"] == "jinja2"
    spec = (repo / "prompts" / "support-reply.yaml").read_text()
    msgs = pv.template if isinstance(pv.template, list) else json.loads(pv.template)
    assert all(m["content"].splitlines()[0] in spec for m in msgs)
    assert not (repo / ".specops" / "prompts").exists()  # nothing home-made any more


def test_model_alias_moved_out_of_band_is_drift_restored_under_reconcile(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    c = client_of(repo)
    served = c.get_model_version_by_alias("support-llm", "dev")
    assert served.tags["specops.env"] == "dev" and served.tags["specops.spec_digest"]
    assert c.get_registered_model("support-llm").aliases == {"dev": int(served.version), "dev-candidate": int(served.version)}
    other = c.create_model_version("support-llm", "file:///elsewhere", tags={"note": "by hand"})
    c.set_registered_model_alias("support-llm", "dev", other.version)  # someone moved the alias
    r = cli("drift", str(repo), "--env", "dev")
    assert r.exit_code == 2, r.output
    assert "registered_model.support-llm" in r.output
    assert f'model.json:aliases.dev: "spec {served.tags["specops.spec_digest"][:12]}" -> "version {other.version}"' \
        in r.output
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")  # dev: drift reconcile
    assert r.exit_code == 0, r.output
    assert c.get_model_version_by_alias("support-llm", "dev").version == served.version
    assert cli("drift", str(repo), "--env", "dev").exit_code == 0


def test_model_alias_moved_under_drift_report_is_refused(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    project = repo / "specops.yaml"
    project.write_text(project.read_text().replace("policy: {drift: reconcile, prune: true}",
                                                   "policy: {drift: report, prune: true}"))
    c = client_of(repo)
    served = c.get_model_version_by_alias("support-llm", "dev")
    other = c.create_model_version("support-llm", "file:///elsewhere")
    c.set_registered_model_alias("support-llm", "dev", other.version)
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 1
    assert "policy is drift: report; apply refuses until it is resolved" in r.output
    assert c.get_model_version_by_alias("support-llm", "dev").version == other.version  # untouched
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve", "--overwrite-drift").exit_code == 0
    assert c.get_model_version_by_alias("support-llm", "dev").version == served.version


def _legacy(repo: Path) -> None:
    """Make the repo look applied by the specops that kept prompts in `.specops/prompts/`: its
    registry files (an older version 1 of support-reply too) and its state records."""
    from specops.checks import analyze
    from specops.ops.plan import load_env
    from specops.state import ResourceState, State

    ctx = load_env(analyze(repo), "dev")
    state = State.new("dev")
    base = repo / ".specops" / "prompts" / "dev"
    base.mkdir(parents=True)
    for d in ctx.desired:
        if d.type != "prompt":
            continue
        doc = {k: v for k, v in d.attributes["prompt.json"].items() if k != "aliases"}
        body = {k: v for k, v in doc.items() if k not in ("name", "version", "labels")}
        versions = {str(doc["version"]): body}
        if d.name == "support-reply":
            versions["1"] = {**body, "model": "an-older-model"}
        (base / f"{d.name}.json").write_text(json.dumps(
            {"name": d.name, "versions": versions, "labels": {lb: doc["version"] for lb in doc["labels"]}}))
        state.resources[d.address] = ResourceState(
            address=d.address, type="prompt", name=d.name,
            content_hash=content_hash({"prompt.json": json_bytes(doc)}), ids={"version": str(doc["version"])},
            outputs={"labels": doc["labels"], "version": doc["version"]}, attributes={"prompt.json": doc})
    with ctx.store.lock("test"):
        ctx.store.write(state)


def test_legacy_prompt_registry_is_migrated_by_the_first_apply_with_a_notice(repo):
    _legacy(repo)
    # Until the apply, the old registry is what is live: no drift, only the new aliases to add.
    assert cli("drift", str(repo), "--env", "dev").exit_code == 0
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert ("notice: migrated the local prompt registry .specops/prompts/dev/ into MLflow (support-reply (2 "
            "version(s)), ticket-triage (1 version(s))) and removed it") in r.output
    assert not (repo / ".specops" / "prompts").exists()
    c = client_of(repo)
    old = [v for v in tracking.prompt_versions(c, "support-reply") if v.tags.get("specops.version") == "1"]
    assert len(old) == 1 and old[0].tags["specops.model"] == "an-older-model"  # the history moved too
    current = c.get_prompt_version_by_alias("support-reply", "dev-latest")
    assert current.tags["specops.version"] != "1"
    assert c.get_prompt_version_by_alias("support-reply", "dev").version == current.version
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0 and "No changes" in r.output and "notice" not in r.output


def test_gate_run_baseline_is_the_version_the_env_serves(repo, tmp_path):
    """`gate run` compares a relative threshold with the metrics recorded on the version the
    environment's alias points at: move the alias, and the same metrics get the other verdict."""
    c = client_of(repo)
    tracking.ensure_registered_model(c, "support-llm", "support-llm")

    def version(rouge: float) -> str:
        rec = {"support-no-regression": {"passed": True, "metrics": {"rougeL": rouge, "exact_match": 0.3}}}
        return c.create_model_version("support-llm", "file:///v", tags={"specops.gates.prod": json.dumps(rec)}).version

    weaker, stronger = version(0.40), version(0.60)
    m = tmp_path / "metrics.json"
    m.write_text(json.dumps({"rougeL": 0.5, "exact_match": 0.3}))

    def gate_run():
        return cli("gate", "run", "support-no-regression", str(repo), "--env", "prod", "--metrics", str(m))

    # Nothing serves in prod yet: onMissingBaseline (pass) decides.
    r = gate_run()
    assert r.exit_code == 0 and "gate support-no-regression: passed" in r.output, r.output
    c.set_registered_model_alias("support-llm", "prod", weaker)
    r = gate_run()
    assert r.exit_code == 0, r.output
    state = json.loads((repo / ".specops" / "state" / "prod.state.json").read_text())
    assert state["gates"]["support-no-regression"]["baseline_version"] == str(weaker)
    c.set_registered_model_alias("support-llm", "prod", stronger)
    r = gate_run()
    assert r.exit_code == 1 and "rougeL = 0.5 < 0.59" in r.output, r.output


@pytest.fixture()
def mlflow_server(tmp_path):
    """`mlflow server` on 127.0.0.1 (SQLite behind it, the empty store copied in first)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    tracking._empty_store(db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{db}", "--workers", "1",
                             "--artifacts-destination", (tmp_path / "server" / "artifacts").as_uri()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("mlflow server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_a_teams_tracking_server_is_the_registry(repo, mlflow_server, monkeypatch):
    from mlflow import MlflowClient

    project = repo / "specops.yaml"
    project.write_text(project.read_text().replace(
        "      gpus: [L4, H100]\n",
        f"      gpus: [L4, H100]\n      registry: {{trackingUri: '{mlflow_server}', "
        "token: {secretRef: {provider: env, name: TEAM_MLFLOW_TOKEN}}}\n"))
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 1 and "registry token: environment variable TEAM_MLFLOW_TOKEN is not set" in r.output
    monkeypatch.setenv("TEAM_MLFLOW_TOKEN", "not-a-real-token")  # the open server ignores it
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert not (repo / ".specops" / "mlflow").exists()  # nothing in the embedded store
    c = MlflowClient(mlflow_server, mlflow_server)
    assert c.get_prompt_version_by_alias("support-reply", "dev-latest").tags["specops.version"] == "4"
    served = c.get_model_version_by_alias("support-llm", "dev")
    c.set_registered_model_alias("support-llm", "dev", c.create_model_version("support-llm", "s3://by-hand/x").version)
    r = cli("drift", str(repo), "--env", "dev")
    assert r.exit_code == 2 and "model.json:aliases.dev" in r.output
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert c.get_model_version_by_alias("support-llm", "dev").version == served.version
    assert "not-a-real-token" not in r.output
