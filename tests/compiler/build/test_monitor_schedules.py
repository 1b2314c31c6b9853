"""A scheduled Monitor compiles to a monitoring job on the environment's orchestrator: the
churn example's `churn-drift` (cron "0 6 * * *") as a KFP one-step pipeline + recurring run
(staging), a SageMaker pipeline + EventBridge Scheduler request (prod), and, where ZenML's
local orchestrator cannot schedule (dev), a crontab line for the host's scheduler."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import yaml

from specops.backends import zenml as Z
from specops.backends.kfp import check_references
from specops.backends.sagemaker_schema import validate_definition
from specops.build.compile import compile_repo
from specops.checks import analyze
from tests.compiler.build.test_monitor_artifacts import _copy as copy_example
from tests.compiler.build.test_monitor_artifacts import _edit

ROOT = Path(__file__).resolve().parents[3]
MON = "monitors/churn-drift.yaml"


@cache
def _churn() -> tuple[dict[str, bytes], tuple]:
    build = compile_repo(analyze(ROOT / "examples" / "churn"))
    assert not build.diagnostics.has_errors, [d.headline() for d in build.diagnostics.sorted()]
    return build.files(), tuple(build.diagnostics.sorted())


def _copy(tmp_path: Path, name: str = "churn") -> Path:
    return copy_example(tmp_path, name)


def _job_params(files: dict[str, bytes], env: str) -> dict:
    return {**json.loads(files[f"{env}/monitors/churn-drift/monitor.json"]), "fail_on_breach": True}


def test_kfp_job_is_one_monitor_step_with_a_recurring_run() -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    files, _ = _churn()
    base = "staging/monitors/churn-drift/kfp"
    assert sorted(p for p in files if p.startswith(base)) == [f"{base}/pipeline.yaml", f"{base}/schedule.json"]
    doc = yaml.safe_load(files[f"{base}/pipeline.yaml"])
    json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields raise
    assert check_references(doc) == []
    assert doc["pipelineInfo"] == {"name": "monitor-churn-drift-staging",
                                   "description": "specops monitoring job of monitor churn-drift in environment staging"}
    (task,) = doc["root"]["dag"]["tasks"].values()
    params = task["inputs"]["parameters"]
    assert params["kind"]["runtimeValue"]["constant"] == "monitor"
    assert json.loads(params["params"]["runtimeValue"]["constant"]) == _job_params(files, "staging")
    assert task["cachingOptions"] == {}  # a monitor reads fresh data every run
    sched = json.loads(files[f"{base}/schedule.json"])
    assert sched["kfp_cron"] == "0 0 6 * * *" and sched["pipeline"] == "monitor-churn-drift-staging"


def test_sagemaker_job_fits_the_official_schema_and_schedules_through_eventbridge() -> None:
    files, _ = _churn()
    base = "prod/monitors/churn-drift/sagemaker"
    definition = json.loads(files[f"{base}/definition.json"])
    assert validate_definition(definition) == []
    (step,) = definition["Steps"]
    app = step["Arguments"]["AppSpecification"]
    assert step["Type"] == "Processing" and app["ContainerEntrypoint"] == ["python", "-m", "specops.runtime"]
    assert app["ContainerArguments"][0] == "monitor"
    assert json.loads(files[f"{base}/params/monitor.json"]) == _job_params(files, "prod")
    req = json.loads(files[f"{base}/schedule.json"])
    assert req["Name"] == "specops-monitor-churn-drift-prod"
    assert req["ScheduleExpression"] == "cron(0 6 * * ? *)" and req["ScheduleExpressionTimezone"] == "UTC"
    assert req["Target"]["Arn"].endswith(":pipeline/monitor-churn-drift-prod")


def test_local_orchestrator_gets_a_crontab_line_and_a_note_not_an_error() -> None:
    files, diags = _churn()
    assert not any(p.startswith("dev/monitors/churn-drift/zenml") for p in files)
    lines = files["dev/monitors/churn-drift/crontab"].decode().splitlines()
    assert lines[-1] == '0 6 * * * cd "$SPECOPS_REPO" && specops monitor run churn-drift --env dev'
    assert all(line.startswith("#") for line in lines[:-1])
    (note,) = [d for d in diags if d.file == MON]
    assert note.severity == "note" and "dev/monitors/churn-drift/crontab" in note.message
    assert f"`{lines[-1]}`" in note.message  # the line itself, in the compile's output
    assert note.pos.line == 20  # the cron's line


def test_zenml_target_that_schedules_gets_the_pipeline_with_its_schedule(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    _edit(repo / "specops.yaml", lambda d: d["spec"]["targets"]["local"].update(provider="onprem"))
    build = compile_repo(analyze(repo), ["dev"])
    assert not build.diagnostics.has_errors, [d.headline() for d in build.diagnostics.sorted()]
    files = build.files()
    assert "dev/monitors/churn-drift/crontab" not in files
    run = yaml.safe_load(files["dev/monitors/churn-drift/zenml/run.yaml"])
    assert run["schedule"] == {"cron_expression": "0 6 * * *"}
    (step,) = run["steps"].values()
    assert step["extra"]["specops"]["kind"] == "monitor" and step["enable_cache"] is False
    assert step["parameters"]["params"]["fail_on_breach"] is True
    assert Z.validate_run_config(run, step_ids=["monitor"]) == []
    assert "_steps.monitor(" in files["dev/monitors/churn-drift/zenml/pipeline.py"].decode()


def test_no_job_without_a_schedule_or_with_slo_checks_only(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    _edit(repo / MON, lambda d: d["spec"].pop("schedule"))
    files = compile_repo(analyze(repo)).files()
    assert not any("/monitors/churn-drift/" in p and not p.endswith("monitor.json") for p in files)
    sa = _copy(tmp_path, "support-assistant")

    def slo_only(d: dict) -> None:
        d["spec"]["checks"].pop("llm")
        d["spec"]["watch"].pop("traffic")
    _edit(sa / "monitors" / "support-live.yaml", slo_only)
    files = compile_repo(analyze(sa), ["staging"]).files()
    assert sorted(p.rsplit("/", 1)[1] for p in files if "/monitors/support-live/" in p) == [
        "alerts.rules.yaml", "dashboard.json", "monitor.json", "prometheusrule.yaml"]


def test_a_monitor_job_named_like_a_model_is_an_error(tmp_path: Path) -> None:
    repo = _copy(tmp_path)
    model = repo / "models" / "churn.yaml"
    text = model.read_text(encoding="utf-8")
    model.write_text(text.replace("name: churn-classifier", "name: monitor-churn-drift", 1), encoding="utf-8")
    for p in [*repo.rglob("*.yaml")]:
        p.write_text(p.read_text(encoding="utf-8").replace("churn-classifier", "monitor-churn-drift"), encoding="utf-8")
    errors = [d for d in analyze(repo).diagnostics.sorted() if d.severity == "error"]
    assert [(d.file, d.code, d.pos.line) for d in errors] == [(MON, "duplicate-name", 20)]
    assert "schedules pipeline 'monitor-churn-drift', which is also a Model's name" in errors[0].message


def test_monitor_schedule_prints_the_compiled_line_with_this_checkout(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from specops.cli import main

    repo = _copy(tmp_path / "a dir")  # a path the shell must quote
    r = CliRunner().invoke(main, ["monitor", "schedule", "churn-drift", str(repo), "--env", "dev"])
    assert r.exit_code == 0, r.output
    compiled = _churn()[0]["dev/monitors/churn-drift/crontab"].decode().splitlines()[-1]
    assert r.output.strip() == compiled.replace('"$SPECOPS_REPO"', f"'{repo}'")
