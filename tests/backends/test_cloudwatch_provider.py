"""`cloudwatch_alarms.<monitor>`: a Monitor's CloudWatch alarms on a SageMaker endpoint, planned and
applied against moto's CloudWatch on 127.0.0.1 (boto3, no stubs): create, no-op, an alarm edited
or deleted behind specops's back is drift, a spec change is an update, a dropped alarm is
deleted, and delete removes them all."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from specops.backends.provider import make_provider
from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ops.plan import Action, compute_plan
from specops.ops.resources import desired_resources
from specops.specs.project import Policy
from specops.state import ResourceState, State
from tests.moto_server import aws_test_env, client, moto_server

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "cloudwatch_alarms.support-live"
E2E, RATE = "specops-support-live-prod-e2e-p95", "specops-support-live-prod-error-rate"


def _desired(tmp_path: Path, **slo):
    repo = tmp_path / "sa"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    p = repo / "monitors" / "support-live.yaml"
    doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    doc["environments"] = ["staging", "prod"]
    for k, v in slo.items():
        if v is None:
            doc["spec"]["checks"]["slo"].pop(k)
        else:
            doc["spec"]["checks"]["slo"][k] = v
    p.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    resolved = analyze(repo)
    desired = desired_resources(resolved, compile_repo(resolved, ["prod"]), "prod")
    return next(d for d in desired if d.address == ADDRESS), [d.address for d in desired]


@pytest.fixture()
def cw_endpoint():
    with aws_test_env(), moto_server() as endpoint:
        yield endpoint


def _state(d, ids) -> State:
    s = State(env="prod")
    s.resources[d.address] = ResourceState(d.address, d.type, d.name, d.content_hash, ids, {}, d.attributes, [])
    return s


def _plan(d, state, prov):
    return compute_plan([d], state, env="prod", target="aws", policy=Policy(drift="report"),
                        provider_for=lambda _t: prov).changes[0]


def test_alarms_plan_apply_noop_drift_update_delete(tmp_path: Path, cw_endpoint: str) -> None:
    d, addresses = _desired(tmp_path)
    assert ADDRESS in addresses and list(d.files) == ["cloudwatch-alarms.json"]
    assert d.spec == "Monitor/support-live" and d.depends_on == ()
    prov = make_provider(d.type, env="prod", target=d.target, root=tmp_path, options={"endpoint_url": cw_endpoint})
    assert prov.read(d, None).exists is False
    assert _plan(d, None, prov).action == Action.CREATE

    ids, out = prov.apply(d, None)
    assert out["created"] == [E2E, RATE] and ids == {"alarms": f"{E2E},{RATE}"}
    state = _state(d, ids)
    assert prov.read(d, state.resources[ADDRESS]).content_hash == d.content_hash
    assert _plan(d, state, prov).action == Action.NOOP
    assert prov.apply(d, state.resources[ADDRESS])[1]["unchanged"] == [E2E, RATE]  # a retry changes nothing

    # Edited behind specops's back: another threshold is drift, named field by field.
    cw = client("cloudwatch", cw_endpoint)
    e2e = next(r for r in d.attributes["cloudwatch-alarms.json"] if r["AlarmName"] == E2E)
    cw.put_metric_alarm(**{**e2e, "Threshold": 9_999_000.0})
    ch = _plan(d, state, prov)
    assert ch.action == Action.DRIFT and ch.drift
    assert [(x.path, x.before, x.after) for x in ch.drift_diffs] == [
        (f"cloudwatch-alarms.json:[AlarmName={E2E}].Threshold", 8_000_000.0, 9_999_000.0)]
    assert prov.apply(d, state.resources[ADDRESS])[1]["updated"] == [E2E]  # what reconcile does
    assert _plan(d, state, prov).action == Action.NOOP

    # Deleted behind specops's back: drift too.
    cw.delete_alarms(AlarmNames=[RATE])
    ch = _plan(d, state, prov)
    assert ch.drift and ch.action == Action.DRIFT

    # The spec drops the error-rate SLO and tightens latency: one alarm updated, the other deleted.
    d2, _ = _desired(tmp_path, errorRate=None, e2eP95Ms=6000)
    ch = _plan(d2, state, prov)
    assert ch.action == Action.UPDATE
    ids2, out2 = prov.apply(d2, state.resources[ADDRESS])
    assert out2["updated"] == [E2E] and ids2 == {"alarms": E2E}
    cw.put_metric_alarm(**{**e2e, "AlarmName": RATE})  # put back by hand: not recorded any more
    state = _state(d2, {**ids, **ids2})
    state.resources[ADDRESS] = dataclasses.replace(state.resources[ADDRESS], ids={"alarms": f"{E2E},{RATE}"})
    out3 = prov.apply(d2, state.resources[ADDRESS])[1]
    assert out3["deleted"] == [RATE] and out3["unchanged"] == [E2E]
    got = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    assert sorted(got) == [E2E] and got[E2E]["Threshold"] == 6_000_000.0

    prov.delete(state.resources[ADDRESS])
    assert cw.describe_alarms()["MetricAlarms"] == []
    assert prov.read(d2, state.resources[ADDRESS]).exists is False
