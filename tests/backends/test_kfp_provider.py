"""kfp_pipeline provider: the real kfp.Client (kfp 2.17) against an HTTP double of the KFP API.

Test double: no KFP server can run here (it needs Kubernetes), so `tests/kfp_double.py`
serves the v2beta1 endpoints kfp.Client uses (healthz, pipelines list/get/upload/delete,
versions list/upload/get/delete) on 127.0.0.1, following the API server's behaviour (the
first version of an upload takes the pipeline's name and description; duplicate names are
409). Everything on the client side — kfp.Client, kfp_server_api, urllib3 — is real.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from specops.backends import kfp as kfp_backend
from specops.backends import kfp_provider as kp
from specops.backends.provider import (
    Desired,
    ProviderError,
    RetryableError,
    attributes_of,
    content_hash,
    make_provider,
)
from specops.ir import Target
from specops.state import ResourceState
from tests.fixtures.ir_samples import churn_pipeline
from tests.kfp_double import KfpDouble

ROOT = Path(__file__).resolve().parents[2]


def target(host: str | None) -> Target:
    return Target(name="onprem", backend="kfp", provider="onprem", host=host,
                  artifact_store="minio://mlpipeline/artifacts")


def desired(pipeline) -> Desired:
    prefix = f"{pipeline.env}/kfp/{pipeline.name}"
    files = {f"{prefix}/{k}": v for k, v in kfp_backend.emit(pipeline).items()}
    body = files[f"{prefix}/pipeline.yaml"]
    return Desired(address=f"kfp_pipeline.{pipeline.name}", type="kfp_pipeline", name=pipeline.name,
                   env=pipeline.env, content_hash=content_hash(files), files=files,
                   attributes=yaml.safe_load(body), depends_on=(), target=pipeline.target,
                   spec=f"Model/{pipeline.model}")


def state_of(d: Desired, ids: dict, outputs: dict) -> ResourceState:
    return ResourceState(address=d.address, type=d.type, name=d.name, content_hash=d.content_hash, ids=ids,
                         outputs=outputs, attributes=d.attributes, depends_on=[])


@pytest.fixture()
def kfp_api():
    with KfpDouble() as api:
        yield api


def make(host: str, **options):
    return make_provider("kfp_pipeline", env="prod", target=target(host), root=Path("."), options=options)


def test_create_read_noop_update_rollback_delete(kfp_api, capsys):
    p = make(kfp_api.url)
    d1 = desired(churn_pipeline(target(kfp_api.url), "prod"))
    assert p.read(d1, None).exists is False

    ids, out = p.apply(d1, None)
    assert out["action"] == "create" and out["pipeline_name"] == "churn-classifier-prod"
    assert capsys.readouterr().out == ""  # kfp's "Pipeline details" print is kept off stdout
    (pipeline,) = kfp_api.pipelines.values()
    assert pipeline["display_name"] == "churn-classifier-prod" and ids["pipeline_id"] == pipeline["pipeline_id"]
    live = p.read(d1, None)
    assert live.exists and live.content_hash == d1.content_hash
    assert live.attributes == d1.attributes  # the server's pipeline_spec, for field diffs
    assert live.ids["version_id"] == ids["version_id"]

    assert p.apply(d1, None)[1]["action"] == "noop"  # retry after a crash: nothing new
    assert len(kfp_api.versions[ids["pipeline_id"]]) == 1

    d2 = desired(churn_pipeline(target(kfp_api.url), "prod", threshold=">= 0.9"))
    cur = state_of(d1, ids, out)
    assert p.read(d2, cur).content_hash == d1.content_hash != d2.content_hash
    ids2, out2 = p.apply(d2, cur)
    assert out2["action"] == "update" and ids2["pipeline_id"] == ids["pipeline_id"]
    assert out2["version_name"] == f"churn-classifier-prod-{d2.content_hash[:16]}"
    assert p.read(d2, state_of(d2, ids2, out2)).content_hash == d2.content_hash

    # rolling back to d1's content makes a new newest version (names are unique per pipeline)
    ids3, out3 = p.apply(d1, state_of(d2, ids2, out2))
    assert out3["action"] == "update" and p.read(d1, None).content_hash == d1.content_hash
    names = [v["name"] for v in kfp_api.versions[ids["pipeline_id"]]]
    assert names[0] == "churn-classifier-prod" and len(set(names)) == len(names) == 3

    p.delete(state_of(d1, ids3, out3))
    assert kfp_api.pipelines == {} and p.read(d1, None).exists is False
    p.delete(state_of(d1, ids3, out3))  # gone already: fine


def test_version_uploaded_behind_specops_back_is_drift(kfp_api):
    p = make(kfp_api.url)
    d = desired(churn_pipeline(target(kfp_api.url), "prod"))
    ids, _ = p.apply(d, None)
    hand = yaml.safe_load(d.files["prod/kfp/churn-classifier/pipeline.yaml"])
    hand["root"]["inputDefinitions"] = {"parameters": {"extra": {"parameterType": "STRING"}}}
    kfp_api.add_version(ids["pipeline_id"], "hotfix-by-hand", yaml.safe_dump(hand).encode())

    live = p.read(d, None)
    assert live.exists and live.content_hash == kp.spec_hash(hand) != d.content_hash
    assert live.ids["version_name"] == "hotfix-by-hand"
    assert live.attributes["root"]["inputDefinitions"]["parameters"] == {"extra": {"parameterType": "STRING"}}
    assert p.apply(d, None)[1]["action"] == "update"  # reconcile: our content is newest again
    assert p.read(d, None).content_hash == d.content_hash


def test_503_and_429_are_retried_until_apply_converges():
    seen = []

    def fail(n, method, path):
        if path.endswith("/healthz"):
            return None
        seen.append((n, method, path))
        return 503 if len(seen) in (1, 4) else 429 if len(seen) == 6 else None

    with KfpDouble(fail) as api:
        p = make(api.url, max_wait=0.2)
        d = desired(churn_pipeline(target(api.url), "prod"))
        ids, out = p.apply(d, None)
        assert out["action"] == "create" and len(api.pipelines) == 1
        assert p.read(d, None).content_hash == d.content_hash
    assert len(seen) >= 6


def test_persistent_failure_is_one_retryable_line():
    with KfpDouble(lambda n, m, path: None if path.endswith("/healthz") else 503) as api:
        p = make(api.url, max_attempts=2, max_wait=0.1)
        d = desired(churn_pipeline(target(api.url), "prod"))
        with pytest.raises(RetryableError) as e:
            p.read(d, None)
        assert api.hits["GET /apis/v2beta1/pipelines"] == 2
    assert "HTTP 503" in str(e.value) and "\n" not in str(e.value)


def test_bad_inputs_are_provider_errors(kfp_api):
    with pytest.raises(ProviderError, match="has no host"):
        make(None).read(desired(churn_pipeline(target(None), "prod")), None)
    p = make(kfp_api.url)
    d = desired(churn_pipeline(target(kfp_api.url), "prod"))
    with pytest.raises(ProviderError, match="no pipeline.yaml"):
        p.apply(dataclasses.replace(d, files={}), None)
    # two pipelines with our name (made by hand): refused, not guessed
    p.apply(d, None)
    kfp_api.pipelines["dup"] = {**next(iter(kfp_api.pipelines.values())), "pipeline_id": "dup"}
    with pytest.raises(ProviderError, match="2 pipelines named"):
        p.read(d, None)


def test_schedule_is_a_recurring_run_and_a_hand_edit_is_drift(kfp_api):
    """schedule.json becomes a recurring run on the version apply made newest; one disabled or
    deleted behind specops's back is drift; apply puts it back; a dropped schedule is deleted."""
    p = make(kfp_api.url)
    d = desired(churn_pipeline(target(kfp_api.url), "prod", schedule="0 3 * * 1"))
    # As specops.ops.resources records it: attributes by file, relative to the resource.
    d = dataclasses.replace(d, attributes=attributes_of({k.rsplit("/", 1)[1]: v for k, v in d.files.items()}))
    ids, out = p.apply(d, None)
    assert out["schedule"] == "create"
    [rr] = kfp_api.objects["recurringruns"].values()
    assert rr["recurring_run_id"] == ids["recurring_run_id"] and rr["display_name"].endswith("-schedule")
    assert rr["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}} and rr["mode"] == "ENABLE"
    assert rr["pipeline_version_reference"] == {"pipeline_id": ids["pipeline_id"], "pipeline_version_id": ids["version_id"]}
    [exp] = kfp_api.objects["experiments"].values()
    assert exp["display_name"] == "specops-prod" and rr["experiment_id"] == exp["experiment_id"]
    cur = state_of(d, ids, out)
    assert p.read(d, cur).content_hash == d.content_hash
    _, again = p.apply(d, cur)
    assert again["schedule"] == "noop" and len(kfp_api.objects["recurringruns"]) == 1

    # Disabled by hand: drift, field by field; apply restores it.
    rr["mode"] = "DISABLE"
    live = p.read(d, cur)
    assert live.content_hash != d.content_hash and live.attributes["schedule.json"]["enabled"] is False
    ids2, out2 = p.apply(d, cur)
    assert out2["schedule"] == "update" and p.read(d, state_of(d, ids2, out2)).content_hash == d.content_hash
    # Deleted by hand: drift too.
    kfp_api.objects["recurringruns"].clear()
    assert p.read(d, state_of(d, ids2, out2)).attributes["schedule.json"] == {}
    ids3, out3 = p.apply(d, state_of(d, ids2, out2))
    assert out3["schedule"] == "create"

    # The spec drops the schedule: the recurring run goes, the pipeline stays.
    plain = desired(churn_pipeline(target(kfp_api.url), "prod"))
    _, out4 = p.apply(plain, state_of(d, ids3, out3))
    assert out4["schedule"] == "delete" and not kfp_api.objects["recurringruns"] and kfp_api.pipelines


def test_start_runs_once_per_run_id(kfp_api):
    """A monitor's retrain run: one run named after the run id; asking again returns it."""
    p = make(kfp_api.url)
    d = desired(churn_pipeline(target(kfp_api.url), "prod"))
    first = p.start(d, "ab" * 32)
    again = p.start(d, "ab" * 32)
    [run] = kfp_api.objects["runs"].values()
    assert first["action"] == "started" and again == {**first, "action": "existing"}
    assert run["run_id"] == first["execution"] and run["display_name"] == "retrain-" + "ab" * 6
    assert run["pipeline_version_reference"]["pipeline_id"] == next(iter(kfp_api.pipelines))
    with pytest.raises(ProviderError, match="does not upload to minio://mlpipeline/artifacts"):
        p.start(d, "cd" * 32, {"s3://x/w.csv": b"a"})


# ---- credentials: the target's secretRef, sent as the bearer token ------------------------------


def test_target_credentials_are_sent_as_the_bearer_token(monkeypatch, tmp_path):
    """The double stands behind an authenticating proxy (see tests/kfp_double.py): without the
    token every request is 401; with the target's credentials, read from where the secretRef
    says, kfp.Client sends `Authorization: Bearer <token>` on every request. The value appears in
    no output and no error."""
    token = "kfp-" + "9f3c" * 6
    monkeypatch.setenv("KFP_STAGING", json.dumps({"token": token}))
    with KfpDouble(token=token) as api:
        d = desired(churn_pipeline(target(api.url), "prod"))
        # no credential, a wrong one: refused in one line at once (kfp.Client would retry for 25 s)
        with pytest.raises(ProviderError) as e:
            make(api.url).read(d, None)
        assert str(e.value) == (f"KFP at {api.url} answered HTTP 401: a credential is needed "
                                "(targets.onprem.credentials)")
        monkeypatch.setenv("KFP_WRONG", "not-the-token")
        with pytest.raises(ProviderError, match="answered HTTP 401: a credential was refused"):
            make(api.url, credentials={"provider": "env", "name": "KFP_WRONG"}).read(d, None)
        assert api.authorizations == {None: 1, "Bearer not-the-token": 1}

        p = make(api.url, credentials={"provider": "env", "name": "KFP_STAGING", "key": "token"})
        ids, out = p.apply(d, None)
        assert out["action"] == "create" and p.read(d, None).content_hash == d.content_hash
        # healthz, list, upload, versions, and read's calls: all of them carried it
        assert api.authorizations[f"Bearer {token}"] == sum(api.hits.values()) - 2 >= 5
        assert token not in json.dumps([ids, out])

        # a Kubernetes Secret mounted as files (the reconcile Deployment's way): `key` names the file
        (tmp_path / "kfp-token").mkdir()
        (tmp_path / "kfp-token" / "token").write_text(token + "\n")
        monkeypatch.setenv("SPECOPS_SECRETS_DIR", str(tmp_path))
        k8s = make(api.url, credentials={"provider": "kubernetes", "name": "kfp-token", "key": "token"})
        assert k8s.read(d, None).exists

        # a secret that is not there: one line naming the reference, never a value
        with pytest.raises(ProviderError) as e:
            make(api.url, credentials={"provider": "env", "name": "KFP_STAGING", "key": "tok"}).read(d, None)
        assert str(e.value) == ("target 'onprem' credentials: env secret KFP_STAGING, key tok is not a JSON object "
                                "with a string 'tok'") and token not in str(e.value)


def test_plan_sends_the_credentials_the_project_names(tmp_path, monkeypatch):
    """From the spec to the wire: `specops plan` of churn's staging, its KFP target pointed at
    the double, reads `targets.gcp.credentials` (secretRef name and key) and every request it
    sends carries that token."""
    from click.testing import CliRunner

    from specops.cli import main

    token = "kfp-" + "5be1" * 6
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    monkeypatch.setenv("CI_SECRETS", json.dumps({"kfp": token}))
    with KfpDouble(token=token) as api:
        proj = repo / "specops.yaml"
        proj.write_text(proj.read_text().replace("https://kfp.acme.internal", api.url)
                        .replace("{provider: env, name: KFP_TOKEN}", "{provider: env, name: CI_SECRETS, key: kfp}"))
        r = CliRunner().invoke(main, ["plan", str(repo), "--env", "staging", "--json"])
        assert r.exit_code == 0, r.output
        row = next(x for x in json.loads(r.output)["resources"] if x["type"] == "kfp_pipeline")
        assert row["action"] == "create"
        assert api.authorizations == {f"Bearer {token}": sum(api.hits.values())} and api.hits
        assert token not in r.output
