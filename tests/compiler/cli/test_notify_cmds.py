"""`specops apply` and `specops drift` send the `apply` and `drift` events to the Project's
notifiers (a real HTTP receiver on 127.0.0.1); a notifier that cannot be reached is a warning,
never a failed command; `--no-notify` sends nothing. Pipelines run on the stand-in orchestrator
of tests/compiler/ops/ops_fixtures.py; the prompt registry provider is the real one."""

from __future__ import annotations


import pytest
from click.testing import CliRunner

from specops.backends import provider as P
from specops.cli import main
from tests.compiler.ops import fake_pipeline_provider
from tests.compiler.ops.ops_fixtures import FAKE, make_repo
from tests.webhook_receiver import validate, webhook_receiver

NOTIFY = """\
  notifications:
    oncall:
      webhook:
        url: {secretRef: {provider: env, name: SPECOPS_TEST_HOOK}}
      environments: [dev]
"""


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    monkeypatch.setitem(P.PROVIDER_OVERRIDES, "zenml_pipeline", FAKE)
    monkeypatch.delenv("SPECOPS_ENV", raising=False)
    fake_pipeline_provider._calls.clear()
    root = make_repo(tmp_path)
    p = root / "specops.yaml"
    p.write_text(p.read_text() + NOTIFY)
    return root


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_apply_and_drift_notify(repo, monkeypatch):
    with webhook_receiver() as hook:
        monkeypatch.setenv("SPECOPS_TEST_HOOK", hook.url)
        r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
        assert r.exit_code == 0, r.output
        [req] = hook.wait(1)
        ev = req.json()
        validate(ev)
        assert ev["event"] == "apply" and ev["source"] == "apply" and ev["env"] == "dev"
        assert ev["project"] == "support-assistant" and ev["apply"]["ok"] is True
        assert "prompt.support-reply" in ev["apply"]["applied"]
        assert cli("apply", str(repo), "--env", "dev", "--auto-approve").exit_code == 0
        assert len(hook.requests) == 1  # nothing to apply: nothing to say

        from mlflow import MlflowClient

        from specops.runtime import tracking

        c = MlflowClient(tracking.embedded_uri(repo), tracking.embedded_uri(repo))
        other = c.register_prompt("support-reply", "edited by hand {{ product }}")
        c.set_prompt_alias("support-reply", "dev-latest", other.version)  # a label moved in MLflow by hand
        assert cli("drift", str(repo), "--env", "dev", "--no-notify").exit_code == 2
        assert len(hook.requests) == 1
        assert cli("drift", str(repo), "--env", "dev").exit_code == 2
        ev = hook.wait(2)[1].json()
        validate(ev)
        assert ev["event"] == "drift" and ev["drift"]["healed"] is False
        assert [r["address"] for r in ev["drift"]["resources"]] == ["prompt.support-reply"]
        assert ev["drift"]["resources"][0]["diffs"], ev
        # staging is not among the notifier's environments
        assert cli("apply", str(repo), "--env", "staging", "--auto-approve").exit_code in (0, 1)
        assert len(hook.requests) == 2


def test_an_unreadable_notifier_is_a_warning(repo, monkeypatch):
    monkeypatch.delenv("SPECOPS_TEST_HOOK", raising=False)
    r = CliRunner().invoke(main, ["apply", str(repo), "--env", "dev", "--auto-approve"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "specops: warning: notifier 'oncall' webhook url: the environment variable 'SPECOPS_TEST_HOOK' is not set; " \
           "not notified" in r.output
