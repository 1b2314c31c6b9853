"""Azure ML's nyc-taxi sample, transcribed (examples/nyc-taxi), tried as a new user would.

dev: `apply` runs prep -> transform -> train -> predict -> score on ZenML's local stack,
trains the downstream model on the predictions after it (lineage order, though its name sorts
first), and serves the model through a real MLServer, which answers a V2 prediction request.
Editing the upstream model then plans the downstream retrain.

prod: against SageMaker's API served by moto on 127.0.0.1, `plan`/`apply` create the endpoint
on a CPU instance with its autoscaling; an endpoint config changed through boto3 is drift,
which the environment's policy (drift: report) reports and apply refuses to overwrite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.cli import main
from tests.moto_server import aws_test_env, aws_with_buckets, client, moto_server

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"


def copy(tmp_path: Path) -> Path:
    repo = tmp_path / "nyc-taxi"
    shutil.copytree(ROOT / "examples" / "nyc-taxi", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    return repo


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def state(repo: Path, env: str) -> dict:
    return json.loads((repo / ".specops" / "state" / f"{env}.state.json").read_text())


@pytest.mark.slow
@pytest.mark.skipif(not MLSERVER.exists(), reason="no .venv-mlserver: run tools/setup_mlserver_venv.sh (.ci/run does)")
def test_dev_apply_trains_in_lineage_order_and_serves_through_mlserver(tmp_path, monkeypatch):
    repo = copy(tmp_path)
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path / "zenml"))
    monkeypatch.setenv("ZENML_ANALYTICS_OPT_IN", "false")
    monkeypatch.setenv("SPECOPS_MLSERVER", str(MLSERVER))
    r = cli("apply", str(repo), "--env", "dev", "--auto-approve")
    served = (state(repo, "dev")["resources"].get("local_server.nyc-taxi-endpoint") or {}).get("ids", {})
    pid = int(served["pid"]) if served.get("pid") else None
    try:
        assert r.exit_code == 0, r.output
        order = [line.split()[2] for line in r.output.splitlines() if line.startswith("[") and "creating" in line]
        # each model's registry aliases (registered_model.*) land after its own pipeline
        for model in ("nyc-taxi-model", "fare-correction"):
            assert order.index(f"registered_model.{model}") > order.index(f"zenml_pipeline.{model}")
        assert [a for a in order if not a.startswith("registered_model.")] == [
            "zenml_pipeline.nyc-taxi-model", "local_server.nyc-taxi-endpoint", "zenml_pipeline.fare-correction"]
        assert "gate nyc-taxi-r2 passed" in r.output
        server = state(repo, "dev")["resources"]["local_server.nyc-taxi-endpoint"]
        features = json.loads((repo / ".specops/serving/dev/nyc-taxi-endpoint/model-settings.json").read_text())["inputs"]
        row = {"distance": 2.0, "passengers": 1, "store_forward": 0, "vendor": 1, "pickup_latitude": 40.75,
               "pickup_longitude": -73.98, "dropoff_latitude": 40.76, "dropoff_longitude": -73.96}
        inputs = [{"name": f["name"], "datatype": f["datatype"], "shape": [1], "data": [row.get(f["name"], 1)]}
                  for f in features]
        req = urllib.request.Request(server["outputs"]["infer"], data=json.dumps({"inputs": inputs}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            (out,) = json.loads(resp.read())["outputs"]
        assert 4.0 < out["data"][0] < 11.0  # about 2.5 + 2.5 per mile for 2 miles
        # The downstream model trained on the upstream model's published predictions.
        assert (repo / ".specops/artifacts/dev/nyc-taxi-model/outputs/predict/predictions/data.csv").is_file()
        assert [p.name for p in (repo / ".specops/registry/fare-correction").iterdir() if p.is_dir()]

        model = repo / "models" / "nyc-taxi.yaml"
        model.write_text(model.read_text().replace("  steps:\n", "  hyperparameters: {fit_intercept: false}\n"
                                                                 "  steps:\n", 1))
        plan = json.loads(cli("plan", str(repo), "--env", "dev", "--json").output)
        actions = {c["address"]: c["action"] for c in plan["resources"]}
        # both models retrain, so both models' registry aliases move to the new versions too
        assert actions == {"zenml_pipeline.nyc-taxi-model": "update", "local_server.nyc-taxi-endpoint": "update",
                           "zenml_pipeline.fare-correction": "update", "registered_model.nyc-taxi-model": "update",
                           "registered_model.fare-correction": "update"}
        (down,) = [c for c in plan["resources"] if c["address"] == "zenml_pipeline.fare-correction"]
        assert down["reason"].startswith("its upstream zenml_pipeline.nyc-taxi-model changes")
        assert [c["address"] for c in plan["resources"] if not c["address"].startswith("registered_model.")][-1] \
            == "zenml_pipeline.fare-correction"
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)


@pytest.fixture()
def aws(monkeypatch):
    with aws_with_buckets(monkeypatch, "acme-mobility-prod") as endpoint:
        yield endpoint


def test_prod_plans_and_applies_the_endpoint_with_autoscaling_and_reports_drift(tmp_path, aws):
    repo = copy(tmp_path)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"r2": 0.97, "rmse": 1.1}))
    g = cli("gate", "run", "nyc-taxi-r2", str(repo), "--env", "prod", "--metrics", str(metrics))
    assert g.exit_code == 0, g.output
    plan = cli("plan", str(repo), "--env", "prod")
    assert "sagemaker_endpoint.nyc-taxi-endpoint  create" in plan.output, plan.output
    r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert r.exit_code == 0, r.output
    sm = client("sagemaker", aws)
    ep = sm.describe_endpoint(EndpointName="nyc-taxi-endpoint-prod")
    cfg = sm.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"])
    assert cfg["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    aas = client("application-autoscaling", aws)
    (target,) = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert cli("plan", str(repo), "--env", "prod", "--detailed-exitcode").exit_code == 0

    # Someone moves the endpoint to a hand-made config through boto3.
    sm.create_endpoint_config(EndpointConfigName="by-hand", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": cfg["ProductionVariants"][0]["ModelName"],
        "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    tags = sm.list_tags(ResourceArn=ep["EndpointArn"])["Tags"]
    sm.delete_endpoint(EndpointName="nyc-taxi-endpoint-prod")
    sm.create_endpoint(EndpointName="nyc-taxi-endpoint-prod", EndpointConfigName="by-hand", Tags=tags)
    d = cli("drift", str(repo), "--env", "prod")
    assert d.exit_code == 2 and "sagemaker_endpoint.nyc-taxi-endpoint" in d.output, d.output
    a = cli("apply", str(repo), "--env", "prod", "--auto-approve")
    assert a.exit_code != 0 and "drift: report" in a.output, a.output


def test_plan_says_the_artifact_store_is_missing_and_apply_refuses_up_front(tmp_path, monkeypatch):
    repo = copy(tmp_path)
    with aws_test_env(), moto_server() as endpoint:  # a fresh account: no bucket yet
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        plan = cli("plan", str(repo), "--env", "prod")
        assert "Problem: artifact store s3://acme-mobility-prod/nyc-taxi of target 'aws': bucket " \
               "'acme-mobility-prod' does not exist" in plan.output, plan.output
        doc = json.loads(cli("plan", str(repo), "--env", "prod", "--json").output)
        assert doc["problems"] and "does not exist" in doc["problems"][0]
        r = cli("apply", str(repo), "--env", "prod", "--auto-approve")
        assert r.exit_code != 0 and "apply stopped at preflight" in r.output, r.output
        assert client("sagemaker", endpoint).list_pipelines()["PipelineSummaries"] == []  # nothing half-done
