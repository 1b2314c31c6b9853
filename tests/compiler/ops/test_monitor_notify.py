"""A breach goes to the notifiers the monitor names, as the one notifier's `breach` event
(validated against compiler/schemas/events/notification.schema.json), received by a real HTTP
server on 127.0.0.1; a monitor that does not breach sends nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from specops.checks import analyze
from specops.ops.monitor import run_monitor
from tests.compiler.runtime.test_runtime_monitor import shifted
from tests.webhook_receiver import validate, webhook_receiver

ROOT = Path(__file__).resolve().parents[3]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    proj = yaml.safe_load((repo / "specops.yaml").read_text(encoding="utf-8"))
    proj["spec"]["notifications"] = {
        "on-call": {"webhook": {"url": {"secretRef": {"provider": "env", "name": "ONCALL_HOOK"}}}, "events": ["breach"]},
        "audit": {"webhook": {"url": {"secretRef": {"provider": "env", "name": "AUDIT_HOOK"}}}}}
    (repo / "specops.yaml").write_text(yaml.safe_dump(proj, sort_keys=False), encoding="utf-8")
    mon = yaml.safe_load((repo / "monitors" / "churn-drift.yaml").read_text(encoding="utf-8"))
    mon["spec"]["onBreach"] = {"notify": ["on-call"]}  # no retrain here: the slow test covers it
    (repo / "monitors" / "churn-drift.yaml").write_text(yaml.safe_dump(mon, sort_keys=False), encoding="utf-8")
    return repo


def test_breach_is_sent_to_the_named_notifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, resolved.diagnostics
    with webhook_receiver() as oncall, webhook_receiver() as audit:
        monkeypatch.setenv("ONCALL_HOOK", oncall.url)
        monkeypatch.setenv("AUDIT_HOOK", audit.url)
        quiet = run_monitor(resolved, "dev", "churn-drift")
        assert not quiet.breached and quiet.deliveries == []
        o = run_monitor(resolved, "dev", "churn-drift", data=shifted(repo / "data" / "production.csv", tmp_path / "w.csv"))
        assert o.breached and [d.ok for d in o.deliveries] == [True]
        (req,) = oncall.wait(1)
        assert audit.requests == []  # not named by the monitor
    body = req.json()
    validate(body)
    assert body["event"] == "breach" and body["source"] == "monitor" and body["env"] == "dev"
    assert body["breach"]["monitor"] == "churn-drift" and body["breach"]["actions"] == ["notify"]
    assert [c["name"] for c in body["breach"]["checks"]] == ["drift:share"]
    assert body["breach"]["checks"][0]["threshold"] == "0.5" and body["breach"]["retrain_run"] is None
    assert body["time"] == o.breach["time"] and {k.lower(): v for k, v in req.headers.items()}["x-specops-event"] == "breach"


def test_unknown_notifier_is_an_error_at_its_line(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    path = repo / "monitors" / "churn-drift.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("- on-call", "- on-cal"), encoding="utf-8")
    diags = [d for d in analyze(repo).diagnostics.sorted() if d.file == "monitors/churn-drift.yaml"]
    assert [(d.code, d.message) for d in diags] == [("unresolved-ref", "unknown notifier 'on-cal' (the Project's "
                                                     "spec.notifications); did you mean 'on-call'?")]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert "on-cal" in lines[diags[0].pos.line - 1]
