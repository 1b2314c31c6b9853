"""A breach on a SageMaker environment starts the retrain run through SageMaker's API (moto on
127.0.0.1): the staged window goes to the target's artifact store, the retrain pipeline is
upserted and one execution starts, named after the run; a second start of the same run finds
that execution instead of starting another (a re-run after kill -9)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from specops.checks import analyze
from specops.ir.monitors import monitor_params
from specops.cli.app import main
from specops.ops.monitor import _retrain
from tests.compiler.runtime.test_runtime_monitor import shifted
from tests.moto_server import aws_with_buckets, client

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def aws(monkeypatch):
    with aws_with_buckets(monkeypatch, "acme-ml-prod-artifacts") as endpoint:
        yield endpoint


def test_breach_on_sagemaker_starts_one_retrain_execution(tmp_path: Path, aws: str) -> None:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    window = shifted(repo / "data" / "production.csv", tmp_path / "june.csv")
    r = CliRunner().invoke(main, ["monitor", "run", "churn-drift", str(repo), "--env", "prod", "--data", str(window),
                                  "--json"], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    schema = json.loads((ROOT / "compiler" / "schemas" / "cli" / "monitor-run.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    retrain = doc["retrain"]
    assert retrain["status"] == "started" and retrain["orchestrator"] == "sagemaker", retrain
    assert retrain["message"] == f"registers version retrain-{retrain['run'][:12]} (no alias) when the run finishes"

    sm = client("sagemaker", aws)
    name = retrain["execution"].split(":pipeline/", 1)[1].split("/", 1)[0]
    assert name.startswith(f"churn-classifier-retrain-{retrain['run'][:8]}")
    [ex] = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
    assert ex["PipelineExecutionArn"] == retrain["execution"]
    assert ex["PipelineExecutionDisplayName"] == f"retrain-{retrain['run'][:12]}"

    # The run reads the window from the artifact store, uploaded byte for byte.
    definition = sm.describe_pipeline(PipelineName=name)["PipelineDefinition"]
    s3 = client("s3", aws)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="acme-ml-prod-artifacts").get("Contents", [])]
    [win] = [k for k in keys if k.startswith("churn/specops/windows/")]
    assert s3.get_object(Bucket="acme-ml-prod-artifacts", Key=win)["Body"].read() == window.read_bytes()
    params = [s3.get_object(Bucket="acme-ml-prod-artifacts", Key=k)["Body"].read().decode()
              for k in keys if "/sagemaker/params/" in k]
    assert "params" in definition and any(f"s3://acme-ml-prod-artifacts/{win}" in p for p in params)

    # The breach is in prod's state with its execution.
    state = json.loads((repo / ".specops" / "state" / "prod.state.json").read_text(encoding="utf-8"))
    [breach] = state["monitors"]["churn-drift"]["breaches"]
    assert breach["retrain"]["execution"] == retrain["execution"]

    # Starting the same run again (same trigger, same window) finds its execution.
    resolved = analyze(repo)
    view = resolved.envs["prod"]
    current = monitor_params(resolved, view, view.get("Monitor", "churn-drift"))["current"]
    [staged] = (repo / ".specops" / "windows").iterdir()
    again = _retrain(resolved, "prod", "churn-classifier", retrain["trigger"], current,
                     "file://" + staged.relative_to(repo).as_posix(), lambda _: None)
    assert again["run"] == retrain["run"] and again["execution"] == retrain["execution"]
    assert len(sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]) == 1


def test_breach_on_kfp_starts_one_retrain_run(tmp_path: Path, monkeypatch) -> None:
    """The staging environment is a KFP target. Test double: no KFP API server can run here
    (tests/kfp_double.py serves the v2beta1 routes kfp.Client calls, behind a bearer token).
    The window is the Dataset's own source, shifted in place; a --data window cannot be
    uploaded to a KFP target's store, which is one line, not a traceback."""
    from tests.kfp_double import KfpDouble

    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    live = repo / "data" / "production.csv"
    shifted(live, tmp_path / "june.csv")
    shutil.copyfile(tmp_path / "june.csv", live)
    token = "kfp-" + "7e1d" * 6
    monkeypatch.setenv("KFP_TOKEN", token)
    with KfpDouble(token=token) as api:
        spec = repo / "specops.yaml"
        spec.write_text(spec.read_text().replace("https://kfp.acme.internal", api.url))
        r = CliRunner().invoke(main, ["monitor", "run", "churn-drift", str(repo), "--env", "staging", "--json"],
                               catch_exceptions=False)
        assert r.exit_code == 2, r.output
        retrain = json.loads(r.stdout)["retrain"]
        assert retrain["status"] == "started" and retrain["orchestrator"] == "kfp", retrain
        [run] = api.objects["runs"].values()
        assert run["run_id"] == retrain["execution"] and run["display_name"] == f"retrain-{retrain['run'][:12]}"
        [pipeline] = api.pipelines.values()
        assert pipeline["display_name"].startswith(f"churn-classifier-retrain-{retrain['run'][:8]}")
        assert token not in r.output

        r = CliRunner().invoke(main, ["monitor", "run", "churn-drift", str(repo), "--env", "staging",
                                      "--data", str(tmp_path / "june.csv")], catch_exceptions=False)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert "a KFP run cannot read it and specops does not upload to gs://" in r.output
