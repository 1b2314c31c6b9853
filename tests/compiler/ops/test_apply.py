"""`specops apply`: confirmation, locking, per-action state, retries, hard errors, drift
policy, crash safety, and the README's main job on the real ZenML provider (slow).

Fast tests use the pipeline stand-in described in ops_fixtures.py; the gitops and prompt
providers are the real ones. Subprocess tests run the real CLI in a child process with the
stand-in registered through `PROVIDER_OVERRIDES` (see _child_cmd).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.backends import provider as P
from specops.cli import main

from . import fake_pipeline_provider
from .ops_fixtures import FAKE, REPO, make_repo

FAKE_VARS = ("SPECOPS_FAKE_GATES", "SPECOPS_FAKE_FAIL", "SPECOPS_FAKE_THROTTLE", "SPECOPS_FAKE_SLOW")


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    for k in FAKE_VARS:
        monkeypatch.delenv(k, raising=False)
    fake_pipeline_provider._calls.clear()
    return make_repo(tmp_path)


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def state_of(repo: Path, env: str) -> dict:
    return json.loads((repo / ".specops" / "state" / f"{env}.state.json").read_text())


def test_apply_without_tty_or_auto_approve_is_refused(repo):
    r = cli("apply", str(repo), "--env", "dev")
    assert r.exit_code == 1
    assert "refusing to apply without confirmation: stdin is not a terminal" in r.output
    assert not (repo / ".specops" / "state" / "dev.state.json").exists()


def test_apply_records_every_action_and_second_plan_is_empty(repo):
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert "[1/4] creating prompt.ticket-triage ..." in r.output
    # after the pipeline that runs its gate; then the model's aliases, after its pipeline
    assert "[3/4] creating prompt.support-reply ..." in r.output
    assert "[4/4] creating registered_model.support-llm ..." in r.output
    assert "Apply complete: 4 applied." in r.output
    st = state_of(repo, "dev")
    assert sorted(st["resources"]) == ["prompt.support-reply", "prompt.ticket-triage", "registered_model.support-llm",
                                       "zenml_pipeline.support-llm"]
    # Two writes per action: its intent before any work, its result the moment it lands.
    assert st["serial"] == 8 and "pending" not in st
    assert sorted(p.name for p in (repo / ".specops" / "state").glob("dev.state.json.*.bak")) == \
        [f"dev.state.json.{n}.bak" for n in (3, 4, 5, 6, 7)]  # the newest 5 previous versions
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0 and "No changes" in r.output and state_of(repo, "dev")["serial"] == 8


def test_throttling_is_retried(repo, monkeypatch):
    monkeypatch.setenv("SPECOPS_FAKE_THROTTLE", "2")
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert fake_pipeline_provider._calls["zenml_pipeline.support-llm"] == 3


def test_hard_error_stops_and_reports_what_landed(repo, monkeypatch):
    monkeypatch.setenv("SPECOPS_FAKE_FAIL", "support-llm")
    r = CliRunner().invoke(main, ["apply", str(repo), "--env", "dev", "--auto-approve"])
    assert r.exit_code == 1
    last = r.output.strip().splitlines()[-1]
    assert last == ("specops: error: apply stopped at zenml_pipeline.support-llm: run of support-llm failed: boom; "
                    "applied: prompt.ticket-triage; not applied: zenml_pipeline.support-llm, prompt.support-reply, "
                    "registered_model.support-llm")
    assert "Traceback" not in r.output
    assert sorted(state_of(repo, "dev")["resources"]) == ["prompt.ticket-triage"]
    monkeypatch.delenv("SPECOPS_FAKE_FAIL")
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    assert cli("plan", str(repo), "--env", "dev", "--detailed-exitcode").exit_code == 0


def test_lock_held_refuses_apply_naming_the_holder(repo):
    from specops.specs.project import StateBackend
    from specops.state import open_store

    store = open_store(StateBackend(), "dev", repo)
    with store.lock("apply") as info:
        r = CliRunner().invoke(main, ["apply", str(repo), "--env", "dev", "--auto-approve"])
    assert r.exit_code == 1
    assert f"state for env 'dev' is locked by {info.owner} (pid {os.getpid()}, apply" in r.output
    assert info.id in r.output


def test_drift_report_policy_refuses_until_resolved(repo, monkeypatch):
    monkeypatch.setenv("SPECOPS_FAKE_GATES", "support-quality=pass,support-no-regression=pass")
    assert cli("apply", str(repo), "--env", "prod", "--auto-approve").exit_code == 0
    dep = repo / ".specops" / "gitops" / "prod" / "support-llm" / "deployment.yaml"
    original = dep.read_text()
    dep.write_text(original.replace("replicas: 2", "replicas: 5"))  # a hand edit in the GitOps repo
    r = cli("drift", str(repo), "--env", "prod")
    assert r.exit_code == 2 and "deployment.yaml:spec.replicas: 2 -> 5" in r.output
    r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert r.exit_code == 1
    assert "policy is drift: report; apply refuses until it is resolved" in r.output
    assert dep.read_text() != original
    assert cli("plan", str(repo), "--env", "prod", "--detailed-exitcode").exit_code == 2
    # Resolving it: the specs win, once, on request.
    assert cli("apply", str(repo), "--env", "prod", "--auto-approve", "--overwrite-drift").exit_code == 0
    assert dep.read_text() == original
    assert cli("drift", str(repo), "--env", "prod").exit_code == 0



def test_gitops_dir_and_ignore_changes_reach_apply_and_drift(repo, monkeypatch):
    """`serving.gitopsDir` is where apply writes the target's manifests; `policy.ignoreChanges`
    is the live noise drift does not report (an fnmatch over `<address>/<file>:<field>`), while
    any other hand edit still is drift."""
    monkeypatch.setenv("SPECOPS_FAKE_GATES", "support-quality=pass,support-no-regression=pass")
    proj = repo / "specops.yaml"
    proj.write_text(proj.read_text()
                    .replace("serving: {platform: kubernetes, namespace: support}",
                             "serving: {platform: kubernetes, namespace: support, gitopsDir: deploy/gitops}")
                    .replace("policy: {requireGates: true, drift: report, prune: false}",
                             "policy: {requireGates: true, drift: report, prune: false,\n"
                             "              ignoreChanges: ['k8s_manifests.*/deployment.yaml:spec.replicas']}"))
    r = cli("validate", str(repo))  # a folder of the spec repo: its manifests must not be read as specs
    assert r.exit_code == 1 and "add `deploy/gitops/` to .specopsignore" in r.output
    (repo / ".specopsignore").write_text("deploy/gitops/\n")
    assert cli("apply", str(repo), "--env", "prod", "--auto-approve").exit_code == 0
    dep = repo / "deploy" / "gitops" / "support-llm" / "deployment.yaml"
    assert dep.is_file() and not (repo / ".specops" / "gitops").exists()
    original = dep.read_text()
    dep.write_text(original.replace("replicas: 2", "replicas: 5"))  # an autoscaler's edit: ignored
    r = cli("drift", str(repo), "--env", "prod")
    assert r.exit_code == 0, r.output
    dep.write_text(original.replace("replicas: 2", "replicas: 5").replace("namespace: support", "namespace: other"))
    r = cli("drift", str(repo), "--env", "prod")
    assert r.exit_code == 2 and "deployment.yaml:metadata.namespace" in r.output
    assert "spec.replicas" not in r.output

def test_corrupt_state_is_one_line_and_untouched(repo):
    assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
    sf = repo / ".specops" / "state" / "dev.state.json"
    sf.write_text('{"version": 1, "serial"')
    r = CliRunner().invoke(main, ["plan", str(repo), "--env", "dev"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "state file is truncated" in r.output and len(r.output.strip().splitlines()) == 1
    assert sf.read_text() == '{"version": 1, "serial"'


# ---- subprocess: concurrency and kill -9 -------------------------------------------------------


def _child_cmd(repo: Path, env: str) -> list[str]:
    code = ("import sys; import specops.backends.provider as p; "
            f"p.PROVIDER_OVERRIDES['zenml_pipeline'] = {FAKE!r}; "
            "from specops.cli import main; main()")
    return [sys.executable, "-c", code, "apply", str(repo), "--env", env, "--auto-approve"]


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FAKE_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def _wait_for(cond, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_second_concurrent_apply_is_refused_with_holder(repo):
    first = subprocess.Popen(_child_cmd(repo, "dev"), env=_child_env(SPECOPS_FAKE_SLOW="4"), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: (repo / ".specops" / "fake" / "dev.log").exists())
        second = subprocess.run(_child_cmd(repo, "dev"), env=_child_env(), cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 1
        assert re.search(rf"state for env 'dev' is locked by \S+ \(pid {first.pid}, apply, since ", second.stderr), \
            second.stderr
        assert "Traceback" not in second.stderr
    finally:
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out


def test_kill_9_mid_apply_then_apply_completes_without_duplicates(repo):
    # The pipeline is created live, then the apply is killed before its state write: the
    # crash window that idempotent providers must survive.
    child = subprocess.Popen(_child_cmd(repo, "dev"), env=_child_env(SPECOPS_FAKE_SLOW="30"), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = repo / ".specops" / "fake" / "dev.log"
    _wait_for(lambda: log.exists() and "create support-llm" in log.read_text())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    st = state_of(repo, "dev")
    assert sorted(st["resources"]) == ["prompt.ticket-triage"]  # landed before the kill
    # The next apply completes: the dead apply's lock (its pid is gone on this host) is
    # released with a notice, and the pipeline that landed before the kill is adopted.
    done = subprocess.run(_child_cmd(repo, "dev"), env=_child_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"released the lock of pid {child.pid}" in done.stderr
    assert "exists live with this content" in done.stdout
    assert log.read_text().count("create support-llm") == 1  # no duplicate
    st = state_of(repo, "dev")
    assert sorted(st["resources"]) == ["prompt.support-reply", "prompt.ticket-triage", "registered_model.support-llm",
                                       "zenml_pipeline.support-llm"]
    assert cli("plan", str(repo), "--env", "dev", "--detailed-exitcode").exit_code == 0


# ---- the README's main job, on the real ZenML provider ----------------------------------------


@pytest.mark.slow
def test_churn_apply_then_plan_is_empty(tmp_path):
    root = tmp_path / "churn"
    shutil.copytree(REPO / "examples" / "churn", root, ignore=shutil.ignore_patterns("build", ".specops"))
    env = _child_env()
    specops = [sys.executable, "-m", "specops"]
    r = subprocess.run(specops + ["apply", str(root), "--env", "dev", "--auto-approve"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "zenml_pipeline.churn-classifier: created" in r.stdout
    st = state_of(root, "dev")
    res = st["resources"]["zenml_pipeline.churn-classifier"]
    assert res["outputs"]["status"] == "completed" and res["outputs"]["model_version"]
    assert st["gates"]["churn-auc"]["passed"] is True
    assert st["gates"]["churn-auc"]["version"] == res["outputs"]["model_version"]
    # MLflow is the registry: the version with its lineage, this env's aliases, its run and card.
    from mlflow import MlflowClient

    from specops.runtime import tracking

    c = MlflowClient(tracking.embedded_uri(root), tracking.embedded_uri(root))
    mv = c.get_model_version_by_alias("churn-classifier", "dev")
    assert c.get_registered_model("churn-classifier").aliases == {"dev": int(mv.version),
                                                                  "dev-candidate": int(mv.version)}
    assert mv.tags["specops.env"] == "dev" and mv.tags["specops.digest"].startswith("sha256:")
    assert [d["name"] for d in json.loads(mv.tags["specops.datasets"])] == ["customers"]
    assert json.loads(mv.tags["specops.gates.dev"])["churn-auc"]["passed"] is True
    run = c.get_run(mv.run_id)
    assert c.get_experiment(run.info.experiment_id).name == "churn-classifier" and run.data.metrics["auc"] >= 0.75
    assert "model_card" in {a.path for a in c.list_artifacts(mv.run_id)}
    r = subprocess.run(specops + ["plan", str(root), "--env", "dev", "--detailed-exitcode"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # The alias moved with MLflow's own client: drift, naming it; apply (reconcile) restores it.
    other = c.create_model_version("churn-classifier", "file:///by-hand")
    c.set_registered_model_alias("churn-classifier", "dev", other.version)
    r = subprocess.run(specops + ["drift", str(root), "--env", "dev"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and f'model.json:aliases.dev: "spec ' in r.stdout, r.stdout + r.stderr
    assert f'-> "version {other.version}"' in r.stdout
    r = subprocess.run(specops + ["apply", str(root), "--env", "dev", "--auto-approve"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert c.get_model_version_by_alias("churn-classifier", "dev").version == mv.version
    # One edit -> exactly that update (and the model's aliases then move to the new version).
    m = root / "models" / "churn.yaml"
    m.write_text(m.read_text().replace("max_depth: 3", "max_depth: 4"))
    r = subprocess.run(specops + ["plan", str(root), "--env", "dev", "--detailed-exitcode", "--json"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    row, aliases = json.loads(r.stdout)["resources"]
    assert row["action"] == "update" and aliases["address"] == "registered_model.churn-classifier"
    # the edit, and the digest the register step records (how apply finds the new version)
    assert [d["path"] for d in row["diffs"]] == ["run.yaml:steps.register.parameters.params.spec_digest",
                                                 "run.yaml:steps.train.parameters.params.hyperparameters.max_depth"]
    assert [d["path"] for d in aliases["diffs"]] == ["model.json:aliases.dev", "model.json:aliases.dev-candidate",
                                                     "model.json:version_of.spec_digest"]
