"""plan / apply / drift end to end against SageMaker's API, served by moto on 127.0.0.1 and
called through boto3: the churn example's prod environment (a SageMaker target)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.cli import main
from tests.moto_server import aws_with_buckets, client

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def aws(monkeypatch):
    with aws_with_buckets(monkeypatch, "acme-ml-prod-artifacts") as endpoint:
        yield endpoint


def churn(tmp_path: Path, drift: str) -> Path:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    p = repo / "specops.yaml"
    p.write_text(p.read_text().replace("policy: {requireGates: true, drift: report}", f"policy: {{requireGates: true, drift: {drift}}}"))
    return repo


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def edit_behind_our_back(endpoint: str) -> None:
    sm = client("sagemaker", endpoint)
    name = "churn-classifier-prod"
    doc = json.loads(sm.describe_pipeline(PipelineName=name)["PipelineDefinition"])
    doc["Parameters"].append({"Name": "Sneaky", "Type": "String", "DefaultValue": "x"})
    sm.update_pipeline(PipelineName=name, PipelineDefinition=json.dumps(doc))


def test_apply_then_plan_is_empty_and_drift_is_reconciled(tmp_path: Path, aws: str) -> None:
    repo = churn(tmp_path, "reconcile")
    r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert "sagemaker_pipeline.churn-classifier" in r.output
    sm = client("sagemaker", aws)
    assert sm.describe_pipeline(PipelineName="churn-classifier-prod")["PipelineStatus"] == "Active"
    assert cli("plan", str(repo), "--env", "prod", "--detailed-exitcode").exit_code == 0

    edit_behind_our_back(aws)
    d = cli("drift", str(repo), "--env", "prod")
    assert d.exit_code == 2, d.output
    assert "sagemaker_pipeline.churn-classifier" in d.output

    r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert r.exit_code == 0, r.output
    live = json.loads(sm.describe_pipeline(PipelineName="churn-classifier-prod")["PipelineDefinition"])
    assert all(p["Name"] != "Sneaky" for p in live["Parameters"])  # restored
    assert cli("drift", str(repo), "--env", "prod").exit_code == 0
    assert cli("plan", str(repo), "--env", "prod", "--detailed-exitcode").exit_code == 0
    # No duplicates: one pipeline, whatever was retried.
    names = sorted(p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"])
    assert names == ["churn-classifier-prod", "monitor-churn-drift-prod"]  # the model's and the monitor's job


def test_drift_under_report_policy_refuses_apply(tmp_path: Path, aws: str) -> None:
    repo = churn(tmp_path, "report")
    assert cli("apply", str(repo), "--env", "prod", "--auto-approve").exit_code == 0
    edit_behind_our_back(aws)
    r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert r.exit_code == 1
    assert "drift: report" in r.output and "specops drift --env prod" in r.output
    live = json.loads(client("sagemaker", aws).describe_pipeline(PipelineName="churn-classifier-prod")["PipelineDefinition"])
    assert any(p["Name"] == "Sneaky" for p in live["Parameters"])  # left alone


def test_editing_one_spec_plans_exactly_that_update(tmp_path: Path, aws: str) -> None:
    repo = churn(tmp_path, "reconcile")
    assert cli("apply", str(repo), "--env", "prod", "--auto-approve").exit_code == 0
    gate = repo / "gates" / "auc.yaml"
    gate.write_text(gate.read_text().replace('">= 0.75"', '">= 0.8"'))
    r = cli("plan", str(repo), "--env", "prod", "--detailed-exitcode", "--json")
    assert r.exit_code == 2, r.output
    plan = json.loads(r.stdout)
    assert plan["changes"] is True
    changes = [c for c in plan["resources"] if c["action"] != "no-op"]
    assert [(c["address"], c["action"]) for c in changes] == [("sagemaker_pipeline.churn-classifier", "update")]
    # The field-level diff names the threshold that moved.
    assert any("0.8" in json.dumps(d) for d in changes[0]["diffs"]), changes[0]["diffs"]
    assert os.environ.get("AWS_ENDPOINT_URL") == aws


MONITOR_SCHEDULE = "specops-monitor-churn-drift-prod"


def test_monitor_schedule_is_planned_applied_and_a_hand_edit_is_drift(tmp_path: Path, aws: str) -> None:
    """The churn-drift monitor's job is `sagemaker_pipeline.monitor-churn-drift`: apply creates its
    pipeline and EventBridge schedule; a schedule edited with boto3 (another cron) is drift, field
    by field; apply restores it; a cron changed in the spec is planned as an update of that job only."""
    repo = churn(tmp_path, "reconcile")
    r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert r.exit_code == 0, r.output
    assert "sagemaker_pipeline.monitor-churn-drift" in r.output
    sched = client("scheduler", aws)
    live = sched.get_schedule(Name=MONITOR_SCHEDULE, GroupName="default")
    arn = client("sagemaker", aws).describe_pipeline(PipelineName="monitor-churn-drift-prod")["PipelineArn"]
    assert live["ScheduleExpression"] == "cron(0 6 * * ? *)" and live["Target"]["Arn"] == arn
    assert cli("plan", str(repo), "--env", "prod", "--detailed-exitcode").exit_code == 0

    # UpdateSchedule replaces the whole schedule: everything else is passed back as it was.
    keep = ("Description", "FlexibleTimeWindow", "ScheduleExpressionTimezone", "State", "Target")
    sched.update_schedule(Name=MONITOR_SCHEDULE, GroupName="default", ScheduleExpression="cron(0 9 * * ? *)",
                          **{k: live[k] for k in keep})
    d = cli("drift", str(repo), "--env", "prod")
    assert d.exit_code == 2, d.output
    assert "sagemaker_pipeline.monitor-churn-drift" in d.output and "cron(0 9 * * ? *)" in d.output
    doc = json.loads(cli("plan", str(repo), "--env", "prod", "--json").stdout)
    row = next(x for x in doc["resources"] if x["address"] == "sagemaker_pipeline.monitor-churn-drift")
    assert row["drift"] is True and row["action"] == "update"  # drift: reconcile overwrites it
    assert [(x["path"], x["before"], x["after"]) for x in row["drift_diffs"]] == [
        ("schedule.json:ScheduleExpression", "cron(0 6 * * ? *)", "cron(0 9 * * ? *)")]
    assert [x["address"] for x in doc["resources"] if x["drift"]] == ["sagemaker_pipeline.monitor-churn-drift"]

    assert cli("apply", str(repo), "--env", "prod", "--auto-approve").exit_code == 0
    assert sched.get_schedule(Name=MONITOR_SCHEDULE, GroupName="default")["ScheduleExpression"] == "cron(0 6 * * ? *)"
    assert cli("drift", str(repo), "--env", "prod").exit_code == 0

    mon = repo / "monitors" / "churn-drift.yaml"
    mon.write_text(mon.read_text().replace('cron: "0 6 * * *"', 'cron: "30 7 * * 1-5"'))
    doc = json.loads(cli("plan", str(repo), "--env", "prod", "--json").stdout)
    changes = [(x["address"], x["action"]) for x in doc["resources"] if x["action"] != "no-op"]
    assert changes == [("sagemaker_pipeline.monitor-churn-drift", "update")]
    assert cli("apply", str(repo), "--env", "prod", "--auto-approve").exit_code == 0
    assert sched.get_schedule(Name=MONITOR_SCHEDULE, GroupName="default")["ScheduleExpression"] == \
        "cron(30 7 ? * MON,TUE,WED,THU,FRI *)"
    assert cli("plan", str(repo), "--env", "prod", "--detailed-exitcode").exit_code == 0
