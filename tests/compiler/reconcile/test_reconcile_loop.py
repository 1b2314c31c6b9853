"""`specops reconcile --interval 5s` run as a new user runs it: a real process watching a bare
local git remote, SageMaker and the state's S3 served by moto on 127.0.0.1, notifications to a
real HTTP receiver. It applies what is pushed in the first sync that sees it, heals a live edit
under `drift: reconcile` and only reports it under `drift: report`, serves /healthz, /readyz
and /metrics (checked by promtool), and a kill in the middle of an apply loses nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

from specops.specs.project import StateBackend
from specops.state import open_store
from tests.aws_gate_proxy import gate_proxy
from tests.compiler.reconcile.loop_process import LoopProcess, loop_env
from tests.gitops_repo import (
    STATE_BUCKET,
    commit_threshold,
    has_sneaky,
    make_origin,
    sneak_parameter,
)
from tests.moto_server import client
from tests.webhook_receiver import validate, webhook_receiver


def ev(name: str, **fields):
    return lambda x: x.get("event") == name and all(x.get(k) == v for k, v in fields.items())


def promtool_accepts(text: str) -> None:
    assert shutil.which("promtool"), "promtool is missing: apt-get install prometheus (.ci/run does)"
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_loop_applies_a_push_heals_reports_and_serves_metrics(tmp_path, aws):
    origin, work = make_origin(tmp_path, notify=True)
    with webhook_receiver() as hook:
        proc = LoopProcess(["--repo", str(origin), "--interval", "5s", "--listen", "127.0.0.1:0",
                            "--workdir", str(tmp_path / "wd"), "--id", "test-loop"],
                           loop_env(SPECOPS_WEBHOOK_URL=hook.url), tmp_path)
        try:
            assert proc.get("/healthz")[0] == 200
            first = proc.wait_for(ev("sync"))
            assert first["envs"] == {"dev": "success", "staging": "success", "prod": "success"}, first
            assert proc.get("/readyz")[0] == 200
            sm = client("sagemaker", aws)
            names = sorted(p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"])
            assert names == ["churn-classifier-dev", "churn-classifier-prod", "churn-classifier-staging"]

            # A pushed commit is applied by the first sync that fetches it, in every environment.
            n = len(proc.lines)
            rev = commit_threshold(work, "0.8")
            proc.wait_for(ev("fetch", revision=rev), after=n)
            done = proc.wait_for(ev("sync", revision=rev), after=n)
            assert done["envs"] == {"dev": "success", "staging": "success", "prod": "success"}, done
            i_fetch = next(i for i, x in enumerate(proc.lines) if ev("fetch", revision=rev)(x))
            i_sync = next(i for i, x in enumerate(proc.lines) if ev("sync", revision=rev)(x))
            applied = [x for x in proc.lines[i_fetch:i_sync] if x["event"] == "apply"]
            assert sorted(x["env"] for x in applied) == ["dev", "prod", "staging"], applied
            assert all(x["applied"] == ["sagemaker_pipeline.churn-classifier"] for x in applied)
            for env in ("dev", "staging", "prod"):
                d = sm.describe_pipeline(PipelineName=f"churn-classifier-{env}")["PipelineDefinition"]
                assert "0.8" in d  # the new threshold is live

            # Live edits behind specops's back: healed in dev (reconcile), reported in prod (report).
            n = len(proc.lines)
            sneak_parameter(aws, "churn-classifier-dev")
            sneak_parameter(aws, "churn-classifier-prod")
            proc.wait_for(ev("drift", env="dev"), after=n)
            proc.wait_for(ev("apply", env="dev"), after=n)
            drift_prod = proc.wait_for(ev("drift", env="prod"), after=n)
            assert "reported, held" in drift_prod["msg"]
            i = proc.lines.index(drift_prod)
            proc.wait_for(ev("sync"), after=i)
            proc.wait_for(ev("sync"), after=proc.lines.index(proc.wait_for(ev("sync"), after=i)) + 1)
            assert not has_sneaky(aws, "churn-classifier-dev")
            assert has_sneaky(aws, "churn-classifier-prod")

            status, text = proc.get("/metrics")
            assert status == 200
            assert 'specops_reconcile_drift_resources{env="prod"} 1.0' in text, text
            assert 'specops_reconcile_drift_resources{env="dev"} 0.0' in text
            assert 'specops_reconcile_drift_healed_total{env="dev"} 1.0' in text
            assert 'specops_reconcile_sync_status{env="prod",last_sync_result="success"} 1.0' in text
            assert 'specops_reconcile_resources{env="prod",status="drifted"} 1.0' in text
            assert f'specops_reconcile_revision_info{{branch="main",revision="{rev}"}} 1.0' in text
            promtool_accepts(text)

            n = len(proc.lines)
            assert proc.post("/webhook") == 202
            proc.wait_for(ev("webhook"), after=n)
            proc.wait_for(ev("sync"), after=n)
        finally:
            rc = proc.stop()
        assert rc == 0, "".join(proc.raw[-30:])
        assert proc.lines[-1]["event"] == "stop"
        assert all(isinstance(x, dict) for x in proc.lines) and len(proc.lines) == len(proc.raw)  # JSON only

        events = hook.events()
    for e in events:
        validate(e)
    assert sorted(e["env"] for e in events if e["event"] == "drift") == ["dev", "prod"]  # prod's drift: said once
    dev_drift = next(e for e in events if e["event"] == "drift" and e["env"] == "dev")
    assert dev_drift["drift"]["healed"] is True and dev_drift["source"] == "reconcile"
    applies = [(e["env"], tuple(e["apply"]["applied"]), e["revision"]) for e in events if e["event"] == "apply"]
    assert ("prod", ("sagemaker_pipeline.churn-classifier",), rev) in applies
    # every apply of the loop is in the environment's history, under the loop's name and revision
    history = open_store(StateBackend.model_validate({"backend": "s3", "bucket": STATE_BUCKET, "region": "us-east-1"}),
                         "prod", tmp_path).read_history()
    assert any(h["via"] == "reconcile" and h["who"] == "reconcile test-loop" and h["commit"] == rev
               and h["applied"] == ["sagemaker_pipeline.churn-classifier"] for h in history), history


@pytest.mark.slow
def test_a_kill_mid_apply_loses_nothing(tmp_path, aws):
    """The loop is SIGKILLed while SageMaker holds its request for the second of two pipelines
    (the proxy in tests/aws_gate_proxy.py holds it, then lets it through: the live object
    exists, the dead loop never recorded it). The next run takes over its lock, finishes the
    work without a duplicate, and a plan afterwards is empty."""
    origin, work = make_origin(tmp_path, models=2)
    args = ["--repo", str(origin), "--env", "dev", "--listen", "127.0.0.1:0", "--workdir", str(tmp_path / "wd"),
            "--id", "test-loop"]
    with gate_proxy(aws) as proxy:
        proxy.hold(lambda target, body: target.endswith("CreatePipeline") and b"churn-classifier-2-dev" in body)
        proc = LoopProcess([*args, "--interval", "1h"], loop_env(AWS_ENDPOINT_URL=proxy.url), tmp_path)
        try:
            assert proxy.held.wait(180), "".join(proc.raw[-30:])
        finally:
            proc.stop(signal.SIGKILL)
        assert proc.proc.returncode == -signal.SIGKILL
        proxy.release()
        assert proxy.forwarded.wait(60)
    assert [x["event"] for x in proc.lines].count("apply") == 0  # it never finished

    store = open_store(StateBackend.model_validate({"backend": "s3", "bucket": STATE_BUCKET, "region": "us-east-1"}),
                       "dev", tmp_path)
    state = store.read()
    assert sorted(state.resources) == ["sagemaker_pipeline.churn-classifier"]  # the first landed and was recorded
    lock = store.current_lock()
    assert lock is not None and lock.operation == "reconcile test-loop"  # left behind by the kill
    sm = client("sagemaker", aws)
    assert sorted(p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]) == [
        "churn-classifier-2-dev", "churn-classifier-dev"]  # the held call reached SageMaker

    again = LoopProcess([*args, "--once"], loop_env(), tmp_path)
    assert again.wait(300) == 0, "".join(again.raw[-40:])
    assert again.events("lock_takeover"), "".join(again.raw)
    [applied] = again.events("apply")
    assert applied["applied"] == ["sagemaker_pipeline.churn-classifier-2"]
    state = store.read()
    assert sorted(state.resources) == ["sagemaker_pipeline.churn-classifier", "sagemaker_pipeline.churn-classifier-2"]
    assert store.current_lock() is None
    assert sorted(p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]) == [
        "churn-classifier-2-dev", "churn-classifier-dev"]  # no duplicate
    plan = subprocess.run([sys.executable, "-m", "specops", "plan", str(tmp_path / "wd" / "checkout"), "--env", "dev",
                           "--detailed-exitcode", "--json"], env=loop_env(), capture_output=True, text=True,
                          timeout=300)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr
    assert json.loads(plan.stdout)["changes"] is False
