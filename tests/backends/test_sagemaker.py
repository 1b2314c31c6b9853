"""SageMaker Pipelines backend: schema validity, shapes, determinism, check(), and a live
create/describe/update round trip through boto3 against moto's real server on 127.0.0.1."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from specops.backends import sagemaker as sm
from specops.backends import sagemaker_entry
from specops.backends.sagemaker_schema import KNOWN_LAGS, SCHEMA_PATH, reference_schema_path, validate_definition
from specops.ir import Resources, Source
from tests.fixtures.ir_samples import AWS, GCP, churn_pipeline, llm_pipeline
from tests.moto_server import aws_test_env, client, moto_server

REPO = Path(__file__).resolve().parents[2]


def _doc(pipeline) -> dict:
    return json.loads(sm.emit(pipeline)["definition.json"])


def _replace_step(pipeline, name: str, **changes):
    steps = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in pipeline.steps)
    return dataclasses.replace(pipeline, steps=steps)


def _gate_params(pipeline, name: str, **changes):
    step = pipeline.step(name)
    return _replace_step(pipeline, name, params={**step.params, **changes})


def _all_steps(doc: dict) -> dict[str, dict]:
    out = {}
    for s in doc["Steps"]:
        out[s["Name"]] = s
        if s["Type"] == "Condition":
            for b in ("IfSteps", "ElseSteps"):
                out.update({x["Name"]: x for x in s["Arguments"][b]})
    return out


def _variants():
    churn = churn_pipeline(AWS, "prod")
    llm = llm_pipeline(AWS, "prod")
    cmd = _replace_step(churn, "train", command=("python", "train.py", "--epochs", "3"))
    return {
        "churn": churn,
        "churn-scheduled": churn_pipeline(AWS, "prod", schedule="30 2 * * 1-5"),
        "churn-lt": churn_pipeline(AWS, "staging", threshold="< 0.2"),
        "llm": llm,
        "llm-no-baseline-pass": _gate_params(llm, "gate-support-regression", baseline=None),
        "llm-no-baseline-fail": _gate_params(llm, "gate-support-regression", baseline=None,
                                             on_missing_baseline="fail"),
        "train-command": cmd,
        "evaluate-command": _replace_step(churn, "evaluate", kind="command",
                                          command=("python", "-m", "myteam.eval")),
        "explicit-instance": _replace_step(churn, "train", resources=Resources(instance_type="ml.c5.9xlarge")),
    }


VARIANTS = _variants()


# ---- the official schema -------------------------------------------------------------------


def test_vendored_schema_is_the_shared_reference():
    ref = reference_schema_path()
    if not ref.is_file():
        # The vendored copy is what every other test validates against; this one only
        # checks it against the project's shared/ folder, which a bare clone lacks.
        pytest.skip(f"no shared/ reference beside this checkout ({ref})")
    assert SCHEMA_PATH.read_bytes() == ref.read_bytes()


def test_schema_itself_is_a_valid_json_schema():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_emitted_definition_validates(name):
    pipeline = VARIANTS[name]
    assert [d for d in sm.check(pipeline) if d.severity == "error"] == []
    assert validate_definition(_doc(pipeline)) == []


def test_known_lags_are_exactly_five_and_tolerated_in_sdk_shape():
    assert set(KNOWN_LAGS) == {"MlflowConfig", "PipelineExperimentConfig", "OutputDataConfig.CompressionType",
                               "PropertyFiles", "Std:JsonGet"}
    doc = _doc(VARIANTS["churn"])
    # What the v3 SDK writes at the top level by default.
    doc["MlflowConfig"] = None
    doc["PipelineExperimentConfig"] = {"ExperimentName": {"Get": "Execution.PipelineName"},
                                       "TrialName": {"Get": "Execution.PipelineExecutionId"}}
    assert validate_definition(doc) == []


def _break(mutate):
    doc = copy.deepcopy(_doc(VARIANTS["churn"]))
    mutate(doc, _all_steps(doc))
    return validate_definition(doc)


BROKEN = {
    "misspelled step type": lambda d, s: s["train"].update(Type="Trainning"),
    "unknown argument key": lambda d, s: s["evaluate"]["Arguments"].update(ProcessingInput=[]),
    "bad step name": lambda d, s: s["train"].update(Name="train step"),
    "unknown condition type": lambda d, s: d["Steps"][3]["Arguments"]["Conditions"][0].update(Type="AtLeast"),
    "integer where string": lambda d, s: s["evaluate"]["Arguments"].update(RoleArn=5),
    "wrong version": lambda d, s: d.update(Version="2021-01-01"),
    "jsonget on undeclared file": lambda d, s: s["evaluate"].pop("PropertyFiles"),
    "jsonget extra key": lambda d, s: d["Steps"][3]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]
    .update(Default=0),
    "property files on a training step": lambda d, s: s["train"].update(
        PropertyFiles=[{"PropertyFileName": "x", "OutputName": "output", "FilePath": "x.json"}]),
    "property file on unknown output": lambda d, s: s["evaluate"]["PropertyFiles"][0].update(OutputName="nope"),
    "compression type bogus": lambda d, s: s["train"]["Arguments"]["OutputDataConfig"].update(
        CompressionType="ZIP"),
    "compression type on processing": lambda d, s: s["evaluate"]["Arguments"]["ProcessingOutputConfig"].update(
        CompressionType="NONE"),
    "mlflow config bogus": lambda d, s: d.update(MlflowConfig={"TrackingUri": "http://x"}),
    "mlflow config inside a step": lambda d, s: s["train"].update(MlflowConfig=None),
    "unknown top-level key": lambda d, s: d.update(PipelineSchedule={"Cron": "x"}),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_definition_does_not_validate(case):
    errors = _break(BROKEN[case])
    assert errors, f"{case}: the validator accepted a broken definition"


def test_validator_names_the_offending_field():
    errors = _break(BROKEN["unknown argument key"])
    assert any("Steps/2/Arguments" in e and "ProcessingInput" in e for e in errors), errors


# ---- shapes --------------------------------------------------------------------------------


def test_churn_shape():
    doc = _doc(VARIANTS["churn"])
    assert doc["Version"] == "2020-12-01"
    assert [(s["Name"], s["Type"]) for s in doc["Steps"]] == [
        ("check-customers", "Processing"), ("train", "Training"), ("evaluate", "Processing"),
        ("gate-churn-auc", "Condition")]
    steps = _all_steps(doc)
    train = steps["train"]["Arguments"]
    assert train["RoleArn"] == AWS.role_arn
    assert train["OutputDataConfig"] == {"CompressionType": "NONE",
                                         "S3OutputPath": "s3://acme-ml-prod-artifacts/prod/churn-classifier/sagemaker/steps/train"}
    assert train["ResourceConfig"]["InstanceType"] == "ml.m5.large"  # cpu 2, memory 4Gi
    assert {"ChannelName": "input-data", "DataSource": {"S3DataSource": {
        "S3DataDistributionType": "FullyReplicated", "S3DataType": "S3Prefix",
        "S3Uri": {"Get": "Steps.check-customers.ProcessingOutputConfig.Outputs['output'].S3Output.S3Uri"}}}} \
        in train["InputDataConfig"]
    ev = steps["evaluate"]
    assert ev["PropertyFiles"] == [{"FilePath": "metrics.json", "OutputName": "output", "PropertyFileName": "metrics"}]
    model_in = [i for i in ev["Arguments"]["ProcessingInputs"] if i["InputName"] == "input-model"]
    assert model_in[0]["S3Input"]["S3Uri"] == {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}
    assert ev["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", "specops.runtime"]
    args = ev["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[0] == "evaluate" and "model=/opt/ml/processing/input/model" in args
    gate = steps["gate-churn-auc"]["Arguments"]
    assert gate["Conditions"] == [{"Type": "GreaterThanOrEqualTo", "RightValue": 0.7, "LeftValue": {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.evaluate.PropertyFiles.metrics"}, "Path": "auc"}}}]
    [register] = gate["IfSteps"]
    assert register["Type"] == "RegisterModel"
    assert register["Arguments"]["ModelPackageGroupName"] == "churn-classifier"
    assert register["Arguments"]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == {
        "Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}
    [fail] = gate["ElseSteps"]
    assert fail["Type"] == "Fail"
    msg = fail["Arguments"]["ErrorMessage"]
    assert "churn-auc" in msg and "auc >= 0.7" in msg and "(gates/churn-auc.yaml)" in msg
    assert [p["Name"] for p in doc["Parameters"]] == ["ProcessingInstanceType", "RepoUri"]


def test_several_gates_guard_register_and_deploy_together():
    doc = _doc(VARIANTS["llm"])
    steps = {s["Name"]: s for s in doc["Steps"]}
    for g in ("gate-support-quality", "gate-support-regression"):
        assert steps[g]["Arguments"]["IfSteps"] == []
        assert steps[g]["Arguments"]["ElseSteps"][0]["Type"] == "Fail"
    final = steps["gates-passed"]
    assert final["DependsOn"] == ["gate-support-quality", "gate-support-regression"]
    assert [c["RightValue"] for c in final["Arguments"]["Conditions"]] == [0.42, 0.44]  # baseline 0.45 - 0.01
    assert [s["Name"] for s in final["Arguments"]["IfSteps"]] == ["register", "deploy"]
    deploy = final["Arguments"]["IfSteps"][1]
    assert deploy["Arguments"]["Environment"] == {
        "SPECOPS_INPUT_REGISTRATION": {"Get": "Steps.register.ModelPackageArn"}}
    assert steps["finetune"]["Arguments"]["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert "gate-support-regression-failed" in json.dumps(steps["gate-support-regression"])
    msg = steps["gate-support-regression"]["Arguments"]["ElseSteps"][0]["Arguments"]["ErrorMessage"]
    assert "rougeL >= 0.44" in msg and "baseline 0.45" in msg


def test_missing_baseline_policy():
    passing = {s["Name"]: s for s in _doc(VARIANTS["llm-no-baseline-pass"])["Steps"]}
    conds = passing["gate-support-regression"]["Arguments"]["Conditions"]
    assert conds == [{"Type": "Equals", "LeftValue": "no-checks", "RightValue": "no-checks"}]
    failing = {s["Name"]: s for s in _doc(VARIANTS["llm-no-baseline-fail"])["Steps"]}
    conds = failing["gate-support-regression"]["Arguments"]["Conditions"]
    assert conds == [{"Type": "Equals", "LeftValue": "baseline-missing", "RightValue": "baseline-present"}]


def test_params_travel_as_content_addressed_s3_documents():
    p = VARIANTS["churn"]
    files = sm.emit(p)
    assert json.loads(files["params/train.json"]) == p.step("train").params
    ups = sm.uploads(p)
    assert sorted(ups.values()) == sorted(v for k, v in files.items() if k.startswith("params/"))
    definition = files["definition.json"].decode()
    for uri in ups:
        assert json.dumps(uri) in definition
    changed = _replace_step(p, "train", params={**p.step("train").params, "seed": 8})
    assert set(sm.uploads(changed)) != set(ups)
    assert sm.emit(changed)["definition.json"] != files["definition.json"]
    # A param value never becomes argument text.
    assert "gradient_boosting" not in definition


def test_training_hyperparameters_drive_the_entry_adapter():
    train = _all_steps(_doc(VARIANTS["churn"]))["train"]["Arguments"]
    argv, env = sagemaker_entry.command_from(train["HyperParameters"])
    assert argv[:4] == [sys.executable, "-m", "specops.runtime", "train"]
    assert argv[argv.index("--output-dir") + 1] == "/opt/ml/model"
    assert "data=/opt/ml/input/data/input-data" in argv and env == {}


def test_user_command_runs_through_the_entry_adapter(tmp_path):
    """Runs the adapter's main() in a real subprocess: it execs the user's command list."""
    p = _replace_step(VARIANTS["churn"], "train", command=(
        sys.executable, "-c",
        "import json,os,sys; json.dump({k: v for k, v in os.environ.items() if k.startswith('SPECOPS_')}, sys.stdout)"))
    hp = _all_steps(_doc(p))["train"]["Arguments"]["HyperParameters"]
    (tmp_path / "hp.json").write_text(json.dumps(hp))
    out = subprocess.run([sys.executable, "-m", "specops.backends.sagemaker_entry", "train"],
                         env={"SPECOPS_SM_HYPERPARAMETERS": str(tmp_path / "hp.json"), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["SPECOPS_OUTPUT_DIR"] == "/opt/ml/model"
    assert env["SPECOPS_INPUT_DATA"] == "/opt/ml/input/data/input-data"
    assert env["SPECOPS_PARAMS_JSON"].startswith("/opt/ml/input/data/specops-params/train-")


# ---- determinism ---------------------------------------------------------------------------


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode() + b"\0" + files[k] + b"\0")
    return h.hexdigest()


def test_emission_is_byte_identical_across_runs_and_hash_seeds():
    here = {name: _digest(sm.emit(p)) for name, p in VARIANTS.items()}
    assert here == {name: _digest(sm.emit(p)) for name, p in VARIANTS.items()}
    code = ("import json; from tests.backends.test_sagemaker import VARIANTS, _digest, sm; "
            "print(json.dumps({n: _digest(sm.emit(p)) for n, p in VARIANTS.items()}))")
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_definition_has_no_absolute_local_paths_or_timestamps():
    text = sm.emit(VARIANTS["llm"])["definition.json"].decode()
    assert str(REPO) not in text and "/tmp" not in text and "2026" not in text


# ---- check() ---------------------------------------------------------------------------------


def test_clean_pipelines_have_no_errors():
    for name, p in VARIANTS.items():
        assert [d for d in sm.check(p) if d.severity == "error"] == [], name


def test_gpu_without_instance_type_is_reported_at_the_step():
    src = Source("models/support-llm.yaml", 14, 5)
    p = _replace_step(VARIANTS["llm"], "finetune", source=src,
                      resources=Resources(accelerator="H100", accelerator_count=1))
    [d] = [d for d in sm.check(p) if d.severity == "error"]
    assert (d.code, d.file, d.pos.line, d.pos.col) == ("unsupported", "models/support-llm.yaml", 14, 5)
    assert "resources.instanceType" in d.message and "H100 x1" in d.message
    assert any("ml.p5.48xlarge" in n for n in d.notes)
    # With an explicit instance type the same step is fine.
    ok = _replace_step(p, "finetune", resources=Resources(accelerator="H100", accelerator_count=1,
                                                           instance_type="ml.p5.4xlarge"))
    assert [d for d in sm.check(ok) if d.severity == "error"] == []
    assert _all_steps(_doc(ok))["finetune"]["Arguments"]["ResourceConfig"]["InstanceType"] == "ml.p5.4xlarge"


def test_target_without_role_or_s3_is_reported():
    no_role = dataclasses.replace(AWS, role_arn=None, source=Source("specops.yaml", 12, 7))
    p = churn_pipeline(no_role, "prod")
    codes = {(d.code, d.file, d.pos.line) for d in sm.check(p)}
    assert ("missing-field", "specops.yaml", 12) in codes
    gcs = churn_pipeline(dataclasses.replace(GCP, backend="sagemaker", role_arn=AWS.role_arn), "staging")
    assert any(d.code == "unsupported" and "s3://" in d.message for d in sm.check(gcs))


def test_unexpressible_schedule_is_reported_at_the_schedule():
    p = churn_pipeline(AWS, "prod", schedule="0 3 1 * 1")
    [d] = sm.check(p)
    assert (d.code, d.file, d.pos.line, d.pos.col) == ("unsupported", "models/churn.yaml", 40, 13)
    assert "day-of-month and day-of-week" in d.message


def test_metric_name_jsonget_cannot_address_is_reported():
    p = _gate_params(VARIANTS["churn"], "gate-churn-auc", metrics=[
        {"metric": "auc.macro", "op": ">=", "value": 0.7, "baseline_delta": None, "raw": ">= 0.7"}])
    [d] = sm.check(p)
    assert d.code == "unsupported" and "auc.macro" in d.message and d.file == "gates/churn-auc.yaml"


@pytest.mark.parametrize("cron,expected", [
    ("0 3 * * *", "cron(0 3 * * ? *)"),
    ("*/15 * * * *", "cron(0/15 * * * ? *)"),
    ("30 2 * * 1-5", "cron(30 2 ? * MON,TUE,WED,THU,FRI *)"),
    ("0 0 * * 0", "cron(0 0 ? * SUN *)"),
    ("0 0 * * 5-7", "cron(0 0 ? * SUN,FRI,SAT *)"),
    ("0 6 1 jan *", "cron(0 6 1 JAN ? *)"),
    ("@weekly", "cron(0 0 ? * SUN *)"),
])
def test_eventbridge_cron(cron, expected):
    assert sm.eventbridge_cron(cron) == expected


@pytest.mark.parametrize("cron", ["0 3 1 * 1", "0 3 * * */2", "0 3 * *", "0 3 * * L", "0 3 * * 5-1"])
def test_eventbridge_cron_rejects(cron):
    with pytest.raises(ValueError):
        sm.eventbridge_cron(cron)


# ---- live round trip on moto -------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint():
    with aws_test_env(), moto_server() as endpoint:
        yield endpoint


def _tags(c, arn: str) -> dict[str, str]:
    tags = c.list_tags(ResourceArn=arn)["Tags"]
    keys = [t["Key"] for t in tags]
    assert len(keys) == len(set(keys)), f"duplicate tag keys: {keys}"
    return {t["Key"]: t["Value"] for t in tags}


def test_create_describe_update_describe_round_trip(moto_endpoint):
    c = client("sagemaker", moto_endpoint)
    p = VARIANTS["churn"]
    name = sm.pipeline_name(p)
    assert name == "churn-classifier-prod"
    body = sm.emit(p)["definition.json"]

    r = sm.upsert(c, name, body, AWS.role_arn, sm.default_tags(p), description="churn in prod")
    assert r["action"] == "create" and r["content_hash"] == hashlib.sha256(body).hexdigest()
    live = c.describe_pipeline(PipelineName=name)
    assert live["PipelineDefinition"] == body.decode()
    assert json.loads(live["PipelineDefinition"]) == json.loads(body)
    assert live["RoleArn"] == AWS.role_arn
    tags = _tags(c, r["arn"])
    assert tags[sm.CONTENT_HASH_TAG] == hashlib.sha256(body).hexdigest()
    assert tags["team"] == "retention" and tags["specops:env"] == "prod"

    assert sm.upsert(c, name, body, AWS.role_arn, sm.default_tags(p))["action"] == "noop"

    raised = churn_pipeline(AWS, "prod", threshold=">= 0.8")
    body2 = sm.emit(raised)["definition.json"]
    assert body2 != body
    r2 = sm.upsert(c, name, body2, AWS.role_arn, sm.default_tags(raised))
    assert r2["action"] == "update" and r2["arn"] == r["arn"]
    live2 = c.describe_pipeline(PipelineName=name)
    assert live2["PipelineDefinition"] == body2.decode() != live["PipelineDefinition"]
    gate = [s for s in json.loads(live2["PipelineDefinition"])["Steps"] if s["Type"] == "Condition"][0]
    assert gate["Arguments"]["Conditions"][0]["RightValue"] == 0.8
    assert _tags(c, r["arn"])[sm.CONTENT_HASH_TAG] == hashlib.sha256(body2).hexdigest()

    # Drift: someone edits the pipeline behind git's back; upsert puts the spec back.
    c.update_pipeline(PipelineName=name, PipelineDefinition=body.decode(), RoleArn=AWS.role_arn)
    assert sm.upsert(c, name, body2, AWS.role_arn, sm.default_tags(raised))["action"] == "update"
    assert c.describe_pipeline(PipelineName=name)["PipelineDefinition"] == body2.decode()


def test_schedule_file_is_a_valid_eventbridge_request(moto_endpoint):
    p = VARIANTS["churn-scheduled"]
    req = json.loads(sm.emit(p)["schedule.json"])
    sched = client("scheduler", moto_endpoint)
    sched.create_schedule(**req)
    got = sched.get_schedule(Name=req["Name"], GroupName="default")
    assert got["ScheduleExpression"] == "cron(30 2 ? * MON,TUE,WED,THU,FRI *)"
    assert got["Target"]["Arn"] == "arn:aws:sagemaker:us-east-1:123456789012:pipeline/churn-classifier-prod"


def test_params_upload_to_s3(moto_endpoint):
    s3 = client("s3", moto_endpoint)
    s3.create_bucket(Bucket="acme-ml-prod-artifacts")
    for uri, data in sm.uploads(VARIANTS["llm"]).items():
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


# ---- cross-checks --------------------------------------------------------------------------


def test_sagemaker_sdk_v3_output_validates_and_has_our_shape():
    """The fixture is the v3 SDK's own definition() of a comparable pipeline (see
    data/make_sagemaker_sdk_fixture.py); it carries all five known lags."""
    sdk = json.loads((Path(__file__).parent / "data" / "sagemaker_sdk_v3_churn.json").read_text())
    assert "MlflowConfig" in sdk and "PipelineExperimentConfig" in sdk
    assert validate_definition(sdk) == []
    ours = _doc(VARIANTS["churn"])

    def shape(doc):
        steps = _all_steps(doc)
        return {n: (s["Type"], "PropertyFiles" in s) for n, s in steps.items() if n != "register"}

    assert shape(sdk) == shape(ours)
    sdk_steps, our_steps = _all_steps(sdk), _all_steps(ours)
    assert sdk_steps["evaluate"]["PropertyFiles"] == our_steps["evaluate"]["PropertyFiles"]
    assert sdk_steps["gate-churn-auc"]["Arguments"]["Conditions"] == our_steps["gate-churn-auc"]["Arguments"]["Conditions"]
    for key in ("AlgorithmSpecification", "OutputDataConfig"):
        assert set(sdk_steps["train"]["Arguments"][key]) == set(our_steps["train"]["Arguments"][key])
    assert (sdk_steps["evaluate"]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"]
            == {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"})


def test_type_dispatch_agrees_with_the_schemas_oneof():
    """validate_definition checks each step against the definition its Type names; that
    must accept and reject exactly what the schema's full oneOf does."""
    from specops.backends.sagemaker_schema import _strip_known_lags, _validators

    whole, _ = _validators()
    docs = [_doc(p) for p in VARIANTS.values()]
    for mutate in BROKEN.values():
        doc = copy.deepcopy(_doc(VARIANTS["churn"]))
        mutate(doc, _all_steps(doc))
        docs.append(doc)
    for doc in docs:
        lag_errors: list[str] = []
        stripped = _strip_known_lags(doc, lag_errors)
        assert (validate_definition(doc) == []) == (not lag_errors and whole.is_valid(stripped))


def test_fast_dump_is_json_dumps_byte_for_byte():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30)

    @settings(max_examples=300, deadline=None)
    @given(values)
    def same(v):
        assert sm._dump(v) == (json.dumps(v, sort_keys=True, indent=2) + "\n").encode()

    same()
    for p in VARIANTS.values():
        d = sm.definition(p)
        assert sm._dump(d) == (json.dumps(d, sort_keys=True, indent=2) + "\n").encode()


def test_pretty_json_hands_what_it_does_not_format_to_json_dumps():
    from specops.backends.jsonfmt import pretty

    class Level(int):
        pass

    for doc in ({1: "int key", 2: [float("nan")]}, {"x": float("inf")}, [Level(3)], {"t": (1, {"z": None})},
                {"é": "ü\u2028", "a": []}):
        assert pretty(doc) == json.dumps(doc, sort_keys=True, indent=2)


def test_backend_module_imports_no_heavy_sdk():
    code = ("import sys, specops.backends.sagemaker, specops.backends.sagemaker_schema; "
            "print(sorted(m for m in ('boto3', 'botocore', 'jsonschema', 'sagemaker') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_emission_never_resolves_lazy_source_positions():
    """Positions cost a second parse; only check() (for diagnostics) may ask for them."""
    calls = []

    def locate():
        calls.append(1)
        return (1, 1)

    p = VARIANTS["llm"]
    steps = tuple(dataclasses.replace(s, source=Source(s.source.file, locate=locate)) for s in p.steps)
    lazy = dataclasses.replace(p, steps=steps, source=Source("models/support-llm.yaml", locate=locate))
    assert sm.emit(lazy) == sm.emit(p)
    sm.uploads(lazy)
    assert calls == []
