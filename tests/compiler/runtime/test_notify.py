"""The notifier against a real HTTP receiver on 127.0.0.1 (tests/webhook_receiver.py): the
payload validates against compiler/schemas/events/notification.schema.json, the signature verifies,
failures retry and never fail the caller, and the URL (a secret) never shows in a message."""

from __future__ import annotations

import hashlib
import hmac
import json

import jsonschema
import pytest

from specops.runtime.notify import Event, Notifier, deliver, deliver_one
from specops.runtime.secrets import SecretError, read_secret
from tests.moto_server import aws_test_env, client, moto_server
from tests.webhook_receiver import SCHEMA, validate, webhook_receiver


def env_ref(name: str, key: str | None = None) -> dict:
    return {"secret_ref": {"provider": "env", "name": name, "key": key}}


def apply_event(env: str = "prod") -> Event:
    return Event("apply", "churn", env, "apply", "env prod: Apply complete: 1 applied.", target="aws",
                 revision="0" * 40, details={"ok": True, "applied": ["sagemaker_pipeline.churn-classifier"],
                                             "blocked": [], "not_applied": [], "failed": None, "error": None,
                                             "changes": [{"address": "sagemaker_pipeline.churn-classifier",
                                                          "type": "sagemaker_pipeline", "name": "churn-classifier",
                                                          "action": "update", "drift": False, "blocked": False,
                                                          "diffs": [{"path": "definition.json:x", "op": "changed",
                                                                     "before": 1, "after": 2}]}]})


def test_the_schema_is_valid_and_rejects_a_mismatched_section():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = apply_event().to_dict()
    validate(doc)
    bad = dict(doc, event="drift")  # says drift, carries an apply section
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate(dict(doc, event="deploy"))


def test_delivers_a_signed_payload(monkeypatch):
    with webhook_receiver() as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        monkeypatch.setenv("HOOK_KEY", "s3cret-signing-key")
        n = Notifier("oncall", env_ref("HOOK_URL"), env_ref("HOOK_KEY"))
        [d] = deliver([n], apply_event())
        assert d.ok and d.status == 204, d
        [req] = hook.wait(1)
    payload = req.json()
    validate(payload)
    assert payload["event"] == "apply" and payload["apply"]["applied"] == ["sagemaker_pipeline.churn-classifier"]
    assert req.headers["x-specops-event"] == "apply"
    want = "sha256=" + hmac.new(b"s3cret-signing-key", req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["x-specops-signature-256"], want)


def test_events_and_environments_filter(monkeypatch):
    with webhook_receiver() as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        only_drift = Notifier("a", env_ref("HOOK_URL"), events=("drift",))
        only_dev = Notifier("b", env_ref("HOOK_URL"), environments=("dev",))
        assert deliver([only_drift, only_dev], apply_event("prod")) == []
        [d] = deliver([only_drift, only_dev], apply_event("dev"))
        assert d.notifier == "b" and d.ok


def test_a_flaky_receiver_is_retried(monkeypatch):
    with webhook_receiver(fail_first=2) as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        d = deliver_one(Notifier("x", env_ref("HOOK_URL")), apply_event().to_dict(), wait_s=0.01)
        assert d.ok, d
        assert len(hook.wait(1)) == 1


def test_failures_are_one_line_without_the_url(monkeypatch):
    with webhook_receiver(fail_first=10) as hook:
        monkeypatch.setenv("HOOK_URL", hook.url + "?token=abc123")
        d = deliver_one(Notifier("x", env_ref("HOOK_URL")), apply_event().to_dict(), attempts=2, wait_s=0.01)
    assert not d.ok and "503" in d.error and "after 2 attempt" in d.error
    assert "127.0.0.1" not in d.error and "abc123" not in d.error
    # the receiver is gone now: connection refused
    d = deliver_one(Notifier("x", env_ref("HOOK_URL")), apply_event().to_dict(), attempts=1)
    assert not d.ok and "cannot connect" in d.error and "abc123" not in d.error
    monkeypatch.delenv("HOOK_URL")
    d = deliver_one(Notifier("x", env_ref("HOOK_URL")), apply_event().to_dict())
    assert not d.ok and "'HOOK_URL' is not set" in d.error
    monkeypatch.setenv("HOOK_URL", "ftp://example.com/x")
    d = deliver_one(Notifier("x", env_ref("HOOK_URL")), apply_event().to_dict())
    assert not d.ok and "not an http(s) URL" in d.error and "example.com" not in d.error


def test_secret_providers(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOKS_JSON", json.dumps({"url": "https://a.example/x"}))
    assert read_secret(env_ref("HOOKS_JSON", "url"), "u") == "https://a.example/x"
    with pytest.raises(SecretError, match="not a JSON object with a string 'nope'"):
        read_secret(env_ref("HOOKS_JSON", "nope"), "u")
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "url").write_text("https://k8s.example/y\n")
    monkeypatch.setenv("SPECOPS_SECRETS_DIR", str(tmp_path))
    k8s = {"secret_ref": {"provider": "kubernetes", "name": "hooks", "key": "url"}}
    assert read_secret(k8s, "u") == "https://k8s.example/y"
    with pytest.raises(SecretError, match="not mounted"):
        read_secret({"secret_ref": {"provider": "kubernetes", "name": "other", "key": "url"}}, "u")
    with pytest.raises(SecretError, match="cannot be read at run time"):
        read_secret({"secret_ref": {"provider": "vault", "name": "a/b"}}, "u")


def test_aws_secrets_manager_through_moto(monkeypatch):
    with aws_test_env(), moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        client("secretsmanager", endpoint).create_secret(Name="specops/hooks",
                                                         SecretString=json.dumps({"url": "https://s.example/z"}))
        ref = {"secret_ref": {"provider": "aws-secrets-manager", "name": "specops/hooks", "key": "url"}}
        assert read_secret(ref, "u") == "https://s.example/z"
        with pytest.raises(SecretError, match="ResourceNotFoundException"):
            read_secret({"secret_ref": {"provider": "aws-secrets-manager", "name": "missing"}}, "u")
