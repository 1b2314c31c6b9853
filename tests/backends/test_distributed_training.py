"""A fine-tune over several nodes, compiled from the support example for every backend:
SageMaker (InstanceCount + torchrun, the official schema and a round trip on moto's server on
127.0.0.1), KFP (a launcher task creating a Kubeflow Trainer TrainJob, validated against the
vendored CRD; it cannot run here), ZenML (a capability diagnostic at the spec line)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from specops.backends import kfp, kfp_trainjob, sagemaker_entry
from specops.backends import sagemaker as sm
from specops.backends.sagemaker_schema import validate_definition
from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ir.lower import lower_env
from specops.runtime import ParamError, StepError, run_step
from specops.runtime import trainjob as trainjob_step
from specops.runtime.__main__ import main as runtime_main
from tests.moto_server import aws_test_env, client, moto_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def support(tmp_path: Path, dev_nodes: int = 1) -> Path:
    repo = tmp_path / "support"
    shutil.copytree(EXAMPLES / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    model = repo / "models" / "support-llm.yaml"
    text = model.read_text()
    text = text.replace("      accelerator: {type: H100, count: 1}\n      instanceType: ml.p5.48xlarge\n",
                        "      accelerator: {type: H100, count: 8}\n      nodes: 2\n      strategy: fsdp\n")
    text = text.replace("  dev:\n    resources: {cpu: \"2\", memory: 8Gi, accelerator: null}",
                        f"  dev:\n    resources: {{cpu: \"2\", memory: 8Gi, accelerator: null, nodes: {dev_nodes}}}\n"
                        "  staging:\n    resources: {nodes: 2}")
    model.write_text(text)
    return repo


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    repo = support(tmp_path_factory.mktemp("dist"))
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    out = compile_repo(resolved)
    assert not out.diagnostics.has_errors, [d.headline() for d in out.diagnostics.sorted()]
    return repo, resolved, out


def _finetune(doc: dict) -> dict:
    return next(s for s in doc["Steps"] if s["Name"] == "finetune")


def test_sagemaker_two_instances_under_torchrun_validate_and_round_trip(build):
    _, resolved, out = build
    body = out.artifacts["prod/sagemaker/support-llm/definition.json"].data
    doc = json.loads(body)
    assert validate_definition(doc) == []
    step = _finetune(doc)["Arguments"]
    assert step["ResourceConfig"]["InstanceCount"] == 2
    assert step["ResourceConfig"]["InstanceType"] == "ml.p5.48xlarge"
    hp = step["HyperParameters"]
    assert json.loads(hp["specops.torchrun"]) == {"nproc_per_node": 8}
    params = json.loads(out.artifacts["prod/sagemaker/support-llm/params/finetune.json"].data)
    assert params["distributed"] == {"nodes": 2, "nproc_per_node": 8, "strategy": "fsdp"}
    # Evaluation stays on one machine.
    evaluate = next(s for s in doc["Steps"] if s["Name"] == "evaluate")
    assert "InstanceCount" not in json.dumps(evaluate["Arguments"].get("ResourceConfig", {})) or \
        evaluate["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    # Each instance's entry starts torchrun with its own rank and the first host as rendezvous.
    argv, _ = sagemaker_entry.command_from(hp, {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    assert argv[:13] == [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", "1",
                         "--nproc_per_node", "8", "--master_addr", "algo-1", "--master_port", "29500"]
    assert argv[13:16] == ["-m", "specops.runtime", "finetune"]
    with aws_test_env(), moto_server() as endpoint:
        c = client("sagemaker", endpoint)
        pipeline = next(p for p in lower_env(resolved, "prod")[0] if p.model == "support-llm")
        r = sm.upsert(c, sm.pipeline_name(pipeline), body, pipeline.target.role_arn, sm.default_tags(pipeline))
        assert r["action"] == "create"
        live = json.loads(c.describe_pipeline(PipelineName=sm.pipeline_name(pipeline))["PipelineDefinition"])
        assert _finetune(live)["Arguments"]["ResourceConfig"]["InstanceCount"] == 2


def test_kfp_carries_a_trainjob_launcher_valid_against_the_crd(build):
    _, _, out = build
    text = out.artifacts["staging/kfp/support-llm/pipeline.yaml"].data
    ir = yaml.safe_load(text)
    json_format.ParseDict(ir, pipeline_spec_pb2.PipelineSpec())
    assert kfp.check_references(ir) == []
    params = ir["root"]["dag"]["tasks"]["finetune"]["inputs"]["parameters"]
    assert params["kind"]["runtimeValue"]["constant"] == "trainjob"
    launcher = json.loads(params["params"]["runtimeValue"]["constant"])
    job = yaml.safe_load(out.artifacts["staging/kfp/support-llm/trainjob-finetune.yaml"].data)
    assert launcher["trainjob"] == job and launcher["namespace"] == "support-staging"
    assert kfp_trainjob.validate(job) == []
    assert job["spec"]["runtimeRef"] == {"name": "torch-distributed"}
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"], trainer["command"]) == (2, 1, ["torchrun"])
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    assert trainer["args"][:3] == ["--module", "specops.runtime", "finetune"]
    assert json.loads(trainer["args"][4])["distributed"]["nodes"] == 2
    # The schema check has teeth: a misspelt field is caught.
    bad = json.loads(json.dumps(job))
    bad["spec"]["trainer"]["numNode"] = 2
    assert any("numNode" in e for e in kfp_trainjob.validate(bad))


def test_zenml_reports_several_nodes_at_the_spec(tmp_path):
    repo = support(tmp_path, dev_nodes=2)
    out = compile_repo(analyze(repo))
    errs = [d for d in out.diagnostics.sorted() if d.severity == "error"]
    assert len(errs) == 1 and errs[0].code == "unsupported" and errs[0].file == "models/support-llm.yaml"
    assert "spans 2 nodes, but ZenML runs a step on one machine" in errs[0].message


class FakeTrainJobs:
    """A test double of the Kubernetes custom-objects API: no cluster runs here."""

    def __init__(self, outcome: str, polls: int = 2):
        self.outcome, self.polls, self.created = outcome, polls, []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        self.created.append((namespace, body))
        return {**body, "metadata": {**body["metadata"], "name": "support-llm-finetune-x7k2p"}}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.polls -= 1
        if self.polls > 0:
            return {"status": {"conditions": [{"type": "Created", "status": "True"}]}}
        cond = {"type": self.outcome, "status": "True", "message": "node-1 exited with code 1"}
        return {"status": {"conditions": [cond]}}


def test_launcher_creates_the_trainjob_with_data_uris_and_waits(build, monkeypatch, tmp_path):
    _, _, out = build
    job = yaml.safe_load(out.artifacts["staging/kfp/support-llm/trainjob-finetune.yaml"].data)
    fake = FakeTrainJobs("Complete")
    monkeypatch.setattr(trainjob_step, "api", lambda: fake)
    monkeypatch.setattr(trainjob_step, "MOUNTS", {f"{tmp_path}/gcs/": "gs://"})
    (tmp_path / "gcs" / "b" / "check").mkdir(parents=True)
    res = run_step("trainjob", {"trainjob": job, "namespace": "ml", "poll_seconds": 0},
                   inputs={"data": str(tmp_path / "gcs" / "b" / "check")}, output_dir=str(tmp_path / "gcs" / "b" / "ft"))
    assert res == {"trainjob": "support-llm-finetune-x7k2p", "namespace": "ml", "passed": True}
    ns, body = fake.created[0]
    assert ns == "ml" and body["spec"]["trainer"]["args"][-4:] == [
        "--input", "data=gs://b/check", "--output-dir", "gs://b/ft"]
    monkeypatch.setattr(trainjob_step, "api", lambda: FakeTrainJobs("Failed"))
    with pytest.raises(StepError, match="TrainJob ml/support-llm-finetune-x7k2p failed: node-1 exited with code 1"):
        run_step("trainjob", {"trainjob": job, "namespace": "ml", "poll_seconds": 0},
                 inputs={"data": str(tmp_path / "gcs" / "b" / "check")}, output_dir=str(tmp_path / "gcs" / "b" / "f2"))
    with pytest.raises(ParamError, match="a TrainJob's pods cannot read a local folder"):
        run_step("trainjob", {"trainjob": job, "namespace": "ml"}, inputs={"data": str(tmp_path)},
                 output_dir=str(tmp_path / "o"))


def test_runtime_reads_and_writes_step_folders_in_s3(tmp_path, monkeypatch, capsys):
    """What a TrainJob pod does, on moto's S3: inputs copied down, the output copied up."""
    with aws_test_env(), moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="art")
        s3.put_object(Bucket="art", Key="run/evaluate/metrics.json", Body=b'{"auc": 0.91}')
        params = json.dumps({"gate": "g", "metrics": [{"metric": "auc", "raw": ">= 0.9"}]})
        code = runtime_main(["gate", "--params", params, "--input", "metrics=s3://art/run/evaluate",
                             "--output-dir", "s3://art/run/gate"])
        assert code == 0, capsys.readouterr().err
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="art", Prefix="run/gate/")["Contents"])
        assert keys == ["run/gate/decision.json", "run/gate/result.json"]
        decision = json.loads(s3.get_object(Bucket="art", Key="run/gate/decision.json")["Body"].read())
        assert decision["passed"] is True
