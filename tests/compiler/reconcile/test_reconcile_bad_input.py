"""Bad input to the reconcile loop: an unreachable remote, invalid specs at the branch head, a
state lock held by CI, a force-pushed branch. Each gives one error line (JSON), the env's
`last_sync_result="error"` in the metrics and a back-off, and nothing is applied. The loop runs
in this process (its HTTP side is covered by test_reconcile_loop.py); git, the bare remote,
SageMaker and S3 on moto are real."""

from __future__ import annotations

import io
import json
import threading

from specops.reconcile.log import JsonLog
from specops.reconcile.loop import Loop, LoopConfig
from specops.specs.project import StateBackend
from specops.state import open_store
from tests.gitops_repo import STATE_BUCKET, commit_threshold, git, make_origin
from tests.moto_server import client


class Lines(io.StringIO):
    def records(self) -> list[dict]:
        return [json.loads(x) for x in self.getvalue().splitlines()]


def make_loop(tmp_path, url, out: Lines, **kw) -> Loop:
    cfg = LoopConfig(url=str(url), workdir=tmp_path / "wd", envs=("dev",), interval=5, backoff_max=60,
                     identity="test-loop", listen="127.0.0.1:0", **kw)
    return Loop(cfg, JsonLog(out))


def error_result(loop: Loop, env: str = "dev") -> float | None:
    return loop.metrics.registry.get_sample_value("specops_reconcile_sync_status",
                                                  {"env": env, "last_sync_result": "error"})


def definition(endpoint: str) -> str:
    return client("sagemaker", endpoint).describe_pipeline(PipelineName="churn-classifier-dev")["PipelineDefinition"]


def one_error(out: Lines, since: int, event: str, *needles: str) -> dict:
    errors = [x for x in out.records()[since:] if x["level"] == "error"]
    assert [x["event"] for x in errors] == [event], errors
    for n in needles:
        assert n in errors[0]["msg"], errors[0]
    return errors[0]


def test_unreachable_remote_backs_off(tmp_path, aws):
    out = Lines()
    loop = make_loop(tmp_path, tmp_path / "no-such-remote.git", out)
    t = threading.Thread(target=loop.run)
    t.start()
    try:
        deadline = 120
        while deadline and not any(x["event"] == "backoff" for x in out.records()):
            threading.Event().wait(0.5)
            deadline -= 0.5
    finally:
        loop.stopping.set()
        loop.wake.set()
        t.join(60)
    recs = out.records()
    one_error(out, 0, "fetch_error", "no-such-remote.git", "nothing applied")
    backoff = next(x for x in recs if x["event"] == "backoff")
    assert backoff["backoff_s"] == 10 and backoff["failures"] == 1  # twice the 5 s interval
    assert error_result(loop) == 1.0
    assert loop.metrics.registry.get_sample_value("specops_reconcile_fetch_errors_total") == 1.0
    assert loop.metrics.registry.get_sample_value("specops_reconcile_ready") == 0.0
    assert recs[-1]["event"] == "stop"
    loop.failures = 5
    assert loop.backoff() == 60  # capped by --backoff-max


def test_invalid_specs_a_held_lock_and_a_force_push_apply_nothing(tmp_path, aws):
    origin, work = make_origin(tmp_path)
    out = Lines()
    loop = make_loop(tmp_path, origin, out)
    assert loop.run_once()
    assert loop.metrics.registry.get_sample_value("specops_reconcile_ready") == 1.0
    live = definition(aws)

    # Invalid specs at the head: one line at file:line:col, nothing applied.
    gate = work / "gates" / "auc.yaml"
    good = gate.read_text()
    gate.write_text(good.replace('">= 0.75"', '">= banana"'))
    git(work, "commit", "-qam", "broken threshold")
    git(work, "push", "-q", "origin", "main")
    n = len(out.records())
    assert not loop.run_once()
    rec = one_error(out, n, "invalid_specs", "gates/auc.yaml:", "nothing applied")
    assert rec["errors"] and all(":" in e for e in rec["errors"])
    assert error_result(loop) == 1.0 and definition(aws) == live
    gate.write_text(good)
    git(work, "commit", "-qam", "fix the threshold")
    git(work, "push", "-q", "origin", "main")
    assert loop.run_once() and error_result(loop) == 0.0

    # A lock held by CI: the sync fails for the env, nothing applied; once released, it applies.
    commit_threshold(work, "0.8")
    store = open_store(StateBackend.model_validate({"backend": "s3", "bucket": STATE_BUCKET, "region": "us-east-1"}),
                       "dev", tmp_path)
    n = len(out.records())
    with store.lock("apply"):
        assert not loop.run_once()
    one_error(out, n, "sync_error", "is locked by", "nothing more applied")
    assert error_result(loop) == 1.0 and definition(aws) == live
    assert loop.run_once()
    assert definition(aws) != live and "0.8" in definition(aws)
    live = definition(aws)

    # A force-pushed branch: history rewritten, nothing applied, until accepted.
    git(work, "checkout", "-q", "--orphan", "rewritten")
    commit_threshold(work, "0.9", push=False)
    git(work, "push", "-q", "--force", "origin", "rewritten:main")
    n = len(out.records())
    assert not loop.run_once()
    one_error(out, n, "fetch_error", "was rewritten (force-push)", "--accept-force-push")
    assert error_result(loop) == 1.0 and definition(aws) == live
    accepting = make_loop(tmp_path, origin, out, accept_force_push=True)
    assert accepting.run_once()
    assert '"0.9"' in definition(aws) or "0.9" in definition(aws)


def test_a_rule_on_the_plan_holds_the_environment_and_applies_are_in_the_history(tmp_path, aws):
    origin, work = make_origin(tmp_path)
    out = Lines()
    loop = make_loop(tmp_path, origin, out)
    assert loop.run_once()
    live = definition(aws)
    (work / "rules.yaml").write_text("""\
apiVersion: specops.dev/v1alpha1
kind: Rule
metadata: {name: no-pipeline-updates}
spec:
  expression: "plan.changes.all(c, c.action != 'update')"
""")
    git(work, "add", "rules.yaml")
    rev = commit_threshold(work, "0.8")  # commits the rule with the change it forbids
    n = len(out.records())
    assert not loop.run_once()
    one_error(out, n, "sync_error", "policy: rules.yaml:5:15: error: rule 'no-pipeline-updates' fails for env 'dev'",
              "nothing more applied")
    assert error_result(loop) == 1.0 and definition(aws) == live
    store = open_store(StateBackend.model_validate({"backend": "s3", "bucket": STATE_BUCKET, "region": "us-east-1"}),
                       "dev", tmp_path)
    [first] = store.read_history()  # the first sync's apply; the held one applied nothing
    assert (first["via"], first["who"], first["result"]) == ("reconcile", "reconcile test-loop", "applied")
    assert first["commit"] != rev and first["applied"] == ["sagemaker_pipeline.churn-classifier"]
