"""KFP backend: emitted IR parses strictly into kfp's PipelineSpec protobuf, its references
hold, emission is byte-identical, and the churn pipeline RUNS under kfp.local.

Real parts only: kfp 2.17's own protobuf (`kfp.pipeline_spec`), its component loader, and
kfp.local's SubprocessRunner executing the emitted executors with the real step runtime.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from specops.backends import kfp as kfp_backend
from specops.backends import yaml_emit
from specops.ir import Resources, Schedule, Source, Step, Target
from tests.fixtures.ir_samples import AWS, GCP, churn_pipeline, llm_pipeline

REPO = Path(__file__).resolve().parents[2]
ONPREM = Target(name="onprem", backend="kfp", provider="onprem", host="http://kfp.local:8888",
                artifact_store="minio://mlpipeline/artifacts")


def _pipelines():
    return {
        "churn-local": churn_pipeline(),
        "churn-gcp-scheduled": churn_pipeline(target=GCP, env="staging", schedule="0 3 * * 1"),
        "llm-gcp": llm_pipeline(),
        "llm-onprem": llm_pipeline(target=ONPREM, env="prod"),
        "llm-aws-shape": llm_pipeline(target=dataclasses.replace(AWS, backend="kfp", provider="aws")),
    }


def _doc(files: dict[str, bytes]) -> dict:
    docs = list(yaml.safe_load_all(files["pipeline.yaml"]))
    assert len(docs) == 1
    return docs[0]


def _parse(doc: dict):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields raise


# ---- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(_pipelines()))
def test_emitted_ir_parses_strictly_and_references_hold(key):
    p = _pipelines()[key]
    assert [d for d in kfp_backend.check(p) if d.severity == "error"] == []
    doc = _doc(kfp_backend.emit(p))
    spec = _parse(doc)
    assert spec.pipeline_info.name == f"{p.name}-{p.env}"
    assert spec.sdk_version == "kfp-2.17.0" and spec.schema_version == "2.1.0"
    assert kfp_backend.check_references(doc) == []
    # Every step is a task somewhere in the DAG tree, named after the step.
    seen = set(doc["root"]["dag"]["tasks"])
    for comp in doc["components"].values():
        seen |= set((comp.get("dag") or {}).get("tasks") or {})
    assert {s.name for s in p.steps} <= seen


def test_kfp_loads_the_emitted_pipeline_as_a_component():
    from kfp import components

    for p in (churn_pipeline(), llm_pipeline()):
        comp = components.load_component_from_text(kfp_backend.emit(p)["pipeline.yaml"].decode())
        assert comp.name == f"{p.name}-{p.env}"
        assert "repo_root" in comp.component_spec.inputs



def test_target_project_is_every_executors_google_cloud_project():
    """The target's GCP project reaches every step container as GOOGLE_CLOUD_PROJECT (the
    PipelineContainerSpec `env` kfp's set_env_variable compiles to; strict protobuf parse above);
    a target without one sets nothing."""
    doc = _doc(kfp_backend.emit(llm_pipeline()))
    envs = [e["container"].get("env") for e in doc["deploymentSpec"]["executors"].values()]
    assert envs and all(env == [{"name": "GOOGLE_CLOUD_PROJECT", "value": GCP.project}] for env in envs)
    _parse(doc)
    doc = _doc(kfp_backend.emit(llm_pipeline(target=ONPREM, env="prod")))
    assert not any("env" in e["container"] for e in doc["deploymentSpec"]["executors"].values())

def test_churn_structure_mirrors_kfp_dsl_if():
    doc = _doc(kfp_backend.emit(churn_pipeline()))
    root = doc["root"]["dag"]["tasks"]
    assert set(root) == {"check-customers", "train", "evaluate", "gate-churn-auc", "condition-1"}
    cond = root["condition-1"]
    assert cond["componentRef"]["name"] == "comp-condition-1"
    assert cond["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-churn-auc--passed'] == true")
    assert cond["inputs"]["parameters"]["pipelinechannel--gate-churn-auc--passed"] == {
        "taskOutputParameter": {"outputParameterKey": "passed", "producerTask": "gate-churn-auc"}}
    assert sorted(cond["dependentTasks"]) == ["evaluate", "gate-churn-auc", "train"]
    inner = doc["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"register"}
    reg = inner["register"]
    assert json.loads(reg["inputs"]["parameters"]["input_names"]["runtimeValue"]["constant"]) == [
        "gate", "metrics", "model"]
    assert reg["inputs"]["artifacts"]["in_2"] == {"componentInputArtifact": "pipelinechannel--train-output"}
    assert reg["cachingOptions"] == {}  # side effects are never cached
    train = root["train"]
    assert train["dependentTasks"] == ["check-customers"]
    assert train["inputs"]["artifacts"]["in_0"] == {
        "taskOutputArtifact": {"outputArtifactKey": "output", "producerTask": "check-customers"}}
    assert train["cachingOptions"] == {"enableCache": True}
    assert doc["components"]["comp-gate-churn-auc"]["outputDefinitions"]["parameters"] == {
        "passed": {"parameterType": "BOOLEAN"}}
    assert doc["root"]["inputDefinitions"]["parameters"]["repo_root"] == {
        "defaultValue": ".", "isOptional": True, "parameterType": "STRING"}
    assert "defaultPipelineRoot" not in doc  # file:// stores are local only


def test_two_gates_nest_two_conditions():
    doc = _doc(kfp_backend.emit(llm_pipeline()))
    c1 = doc["root"]["dag"]["tasks"]["condition-1"]
    assert "gate-support-quality--passed" in c1["triggerPolicy"]["condition"]
    inner = doc["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"condition-2"}
    assert "gate-support-regression--passed" in inner["condition-2"]["triggerPolicy"]["condition"]
    assert set(doc["components"]["comp-condition-2"]["dag"]["tasks"]) == {"register", "deploy"}
    assert doc["defaultPipelineRoot"] == "gs://acme-ml-artifacts/staging/support-llm"


def test_resources_and_gpu_types():
    doc = _doc(kfp_backend.emit(llm_pipeline()))
    comp = doc["components"]["comp-finetune"]
    res = doc["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]["resources"]
    assert res == {
        "accelerator": {"count": "1", "resourceCount": "1", "resourceType": "NVIDIA_L4", "type": "NVIDIA_L4"},
        "cpuLimit": 8.0, "memoryLimit": 34.359738368, "resourceCpuLimit": "8", "resourceMemoryLimit": "32Gi",
    }
    # finetune and evaluate ask for the same GPU, so they share an executor; the others do not.
    assert comp["executorLabel"] == doc["components"]["comp-evaluate"]["executorLabel"]
    assert comp["executorLabel"] != doc["components"]["comp-register"]["executorLabel"]
    onprem = _doc(kfp_backend.emit(llm_pipeline(target=ONPREM)))
    label = onprem["components"]["comp-finetune"]["executorLabel"]
    acc = onprem["deploymentSpec"]["executors"][label]["container"]["resources"]["accelerator"]
    assert acc["resourceType"] == "nvidia.com/gpu"
    churn = _doc(kfp_backend.emit(churn_pipeline()))
    label = churn["components"]["comp-train"]["executorLabel"]
    assert churn["deploymentSpec"]["executors"][label]["container"]["resources"] == {
        "cpuLimit": 2.0, "memoryLimit": 4.294967296, "resourceCpuLimit": "2", "resourceMemoryLimit": "4Gi"}


def test_spec_values_only_travel_as_parameter_constants():
    """A hostile param value stays data: the executor source is the fixed shim everywhere."""
    nasty = "x'); import os; os.system('rm -rf /') #\n{{$.inputs}} \u2028 \"q\""
    base = churn_pipeline()
    steps = list(base.steps)
    steps[1] = dataclasses.replace(steps[1], params={**steps[1].params, "algorithm": nasty})
    p = dataclasses.replace(base, steps=tuple(steps), parameters={"repo_root": nasty})
    doc = _doc(kfp_backend.emit(p))
    _parse(doc)
    for ex in doc["deploymentSpec"]["executors"].values():
        c = ex["container"]
        assert c["command"] == ["sh", "-ec", kfp_backend._LAUNCHER, kfp_backend.SHIM_SOURCE]
        assert c["args"] == ["--executor_input", "{{$}}", "--function_to_execute", "specops_step"]
    const = doc["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["params"]["runtimeValue"]["constant"]
    assert json.loads(const) == p.steps[1].params
    assert doc["root"]["inputDefinitions"]["parameters"]["repo_root"]["defaultValue"] == nasty
    assert "pip install" not in kfp_backend.emit(p)["pipeline.yaml"].decode()


def test_the_shim_compiles_and_has_the_signature_kfp_binds():
    import ast

    tree = ast.parse(kfp_backend.SHIM_SOURCE)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    assert fn.name == kfp_backend.SHIM_FUNCTION
    args = [a.arg for a in fn.args.args]
    assert args[:7] == ["kind", "params", "repo_root", "output", "passed", "input_names", "command"]
    assert args[7:] == [f"in_{i}" for i in range(kfp_backend.MAX_INPUTS)]


def test_schedule_file():
    files = kfp_backend.emit(churn_pipeline(target=GCP, env="staging", schedule="0 3 * * 1"))
    assert sorted(files) == ["pipeline.yaml", "schedule.json"]
    sched = json.loads(files["schedule.json"])
    assert sched["cron"] == "0 3 * * 1"
    assert sched["kfp_cron"] == "0 0 3 * * 1"  # KFP's cron has a seconds field
    assert sched["pipeline"] == "churn-classifier-staging"
    assert "schedule.json" not in kfp_backend.emit(churn_pipeline())


# ---- determinism -------------------------------------------------------------------------------


def test_emission_is_byte_identical_and_matches_pyyaml():
    for p in _pipelines().values():
        a, b = kfp_backend.emit(p), kfp_backend.emit(p)
        assert a == b
        # The fast emitter writes exactly what PyYAML's own dumper writes for the document.
        body = a["pipeline.yaml"].split(b"\n", 2)[2]
        assert body == yaml_emit.dump_reference(kfp_backend.build_ir(p))


def test_fast_yaml_dumper_matches_pyyaml_on_awkward_scalars():
    doc = {"s": ["", "true", "no", "1.0", "0x1f", "~", "null", "a: b", "- x", "#c", " lead", "trail ",
                 "multi\nline\n", "multi\nline", "tab\there", "\u2028sep", "ünï", "'q'", '"dq"', "{{$}}",
                 "@x", "`b", "2024-06-01", "=", "<<"],
           "n": [0, -3, 1.5, 1e20, 3.0, float("inf"), float("-inf"), True, False, None],
           "nested": {"b": {"a": []}, "a": {}}}
    out = yaml_emit.dump(doc)
    assert out == yaml_emit.dump_reference(doc)
    back = yaml.safe_load(out)
    assert back["s"] == doc["s"] and back["n"][:7] == doc["n"][:7]


def test_emission_is_identical_under_another_hash_seed():
    code = (
        "import sys, hashlib\n"
        "from tests.fixtures.ir_samples import churn_pipeline, llm_pipeline\n"
        "from specops.backends import kfp\n"
        "for p in (churn_pipeline(schedule='0 3 * * *'), llm_pipeline()):\n"
        "    for name, data in sorted(kfp.emit(p).items()):\n"
        "        print(name, hashlib.sha256(data).hexdigest())\n"
    )
    outs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.append(subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                                   capture_output=True, text=True).stdout)
    assert outs[0] == outs[1]
    import hashlib

    here = "".join(f"{n} {hashlib.sha256(d).hexdigest()}\n"
                   for p in (churn_pipeline(schedule="0 3 * * *"), llm_pipeline())
                   for n, d in sorted(kfp_backend.emit(p).items()))
    assert outs[0] == here


def test_kfp_is_not_imported_by_the_backend():
    code = "import sys; import specops.backends.kfp; print('kfp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


# ---- check() -----------------------------------------------------------------------------------


def _with_step(p, i, **changes):
    steps = list(p.steps)
    steps[i] = dataclasses.replace(steps[i], **changes)
    return dataclasses.replace(p, steps=tuple(steps))


def test_check_gpu_not_on_vertex_is_an_error_at_the_step():
    p = llm_pipeline()
    p = _with_step(p, 1, resources=Resources(cpu="8", memory="32Gi", accelerator="A10G", accelerator_count=1))
    diags = kfp_backend.check(p)
    errs = [d for d in diags if d.severity == "error"]
    assert len(errs) == 1
    assert errs[0].code == "unsupported" and "'A10G'" in errs[0].message
    assert (errs[0].file, errs[0].pos.line, errs[0].pos.col) == ("models/support-llm.yaml", 1, 1)


def test_check_gpu_model_on_plain_kubernetes_is_a_warning():
    diags = kfp_backend.check(llm_pipeline(target=ONPREM))
    assert diags and all(d.severity == "warning" and d.code == "unsupported" for d in diags)
    assert "cannot pin the GPU model 'L4'" in diags[0].message


def test_check_reports_what_kfp_cannot_express():
    p = churn_pipeline()
    src = Source("models/churn.yaml", 50, 3)
    bad = dataclasses.replace(
        p,
        steps=p.steps + (
            Step("condition-1", "command", {}, command=("true",), image="", source=src),
            Step("fan-in", "evaluate", {}, inputs={f"i{n}": "train" for n in range(9)}, image="x",
                 resources=Resources(cpu="two", memory="4GB"), source=src),
        ),
        schedule=Schedule("every day", Source("models/churn.yaml", 40, 13)),
    )
    diags = kfp_backend.check(bad)
    assert all(d.severity == "error" for d in diags), diags
    unsupported = sorted(d.message for d in diags if d.code == "unsupported")
    assert len(unsupported) == 3, unsupported
    assert any("collides with KFP's condition" in m for m in unsupported)
    assert any("has 9 inputs" in m for m in unsupported)
    assert any("no container image" in m for m in unsupported)
    values = [d.message for d in diags if d.code == "value"]
    assert len(values) == 3 and any("cpu 'two'" in m for m in values) and any("memory '4GB'" in m for m in values)
    sched = [d for d in diags if "cron" in d.message]
    assert (sched[0].pos.line, sched[0].pos.col) == (40, 13)


def test_check_rejects_outputs_leaving_a_condition():
    """Data may flow into nested conditions, never out of one (kfp would need dsl.OneOf)."""
    p = llm_pipeline()
    src = Source("models/x.yaml", 9, 2)
    nested_ok = dataclasses.replace(p, steps=p.steps + (
        Step("after-quality", "evaluate", {}, inputs={"g": "gate-support-quality"}, image="x", source=src),
        Step("mixed", "evaluate", {}, inputs={"a": "after-quality", "b": "gate-support-regression"},
             image="x", source=src),
    ))
    assert kfp_backend.check(nested_ok) == []
    assert kfp_backend.check_references(_doc(kfp_backend.emit(nested_ok))) == []
    # 'after-regression' runs only behind the regression gate, which nests INSIDE the quality
    # gate's condition for 'mixed': its output would have to leave its own condition.
    crossing = dataclasses.replace(p, steps=p.steps + (
        Step("after-regression", "evaluate", {}, inputs={"g": "gate-support-regression"}, image="x"),
        Step("mixed", "evaluate", {}, inputs={"a": "after-regression", "b": "gate-support-quality"},
             image="x", source=src),
    ))
    diags = kfp_backend.check(crossing)
    assert len(diags) == 1
    d = diags[0]
    assert d.code == "unsupported" and d.severity == "error"
    assert "'mixed' reads 'a' from 'after-regression'" in d.message
    assert (d.file, d.pos.line, d.pos.col) == ("models/x.yaml", 9, 2)


def test_check_passes_the_samples():
    assert kfp_backend.check(churn_pipeline()) == []
    assert kfp_backend.check(llm_pipeline()) == []
    assert kfp_backend.check(churn_pipeline(target=GCP, schedule="@daily")) == []


# ---- check_references ------------------------------------------------------------------------------


def test_check_references_finds_dangling_names():
    good = _doc(kfp_backend.emit(llm_pipeline()))
    assert kfp_backend.check_references(good) == []

    def broken(mutate) -> list[str]:
        doc = copy.deepcopy(good)
        mutate(doc)
        _parse(doc)  # the protobuf accepts every one of these
        return kfp_backend.check_references(doc)

    root = lambda d: d["root"]["dag"]["tasks"]  # noqa: E731
    errs = broken(lambda d: root(d)["finetune"].__setitem__("dependentTasks", ["no-such-task"]))
    assert any("no-such-task" in e for e in errs)
    errs = broken(lambda d: root(d)["evaluate"]["inputs"]["artifacts"]["in_1"]["taskOutputArtifact"]
                  .__setitem__("producerTask", "ghost"))
    assert any("producerTask 'ghost'" in e for e in errs)
    errs = broken(lambda d: root(d)["evaluate"]["componentRef"].__setitem__("name", "comp-nope"))
    assert any("comp-nope" in e for e in errs)
    errs = broken(lambda d: d["components"]["comp-deploy"].__setitem__("executorLabel", "exec-nope"))
    assert any("exec-nope" in e for e in errs)
    errs = broken(lambda d: root(d)["condition-1"]["triggerPolicy"].__setitem__(
        "condition", "inputs.parameter_values['pipelinechannel--x--passed'] == true"))
    assert any("triggerPolicy" in e for e in errs)
    errs = broken(lambda d: d["components"]["comp-condition-2"]["dag"]["tasks"]["register"]["inputs"]
                  ["artifacts"]["in_0"].__setitem__("componentInputArtifact", "pipelinechannel--nope"))
    assert any("pipelinechannel--nope" in e for e in errs)
    errs = broken(lambda d: root(d)["check-support-tickets"].__setitem__("dependentTasks", ["evaluate"]))
    assert any("cycle" in e for e in errs)
    errs = broken(lambda d: root(d)["finetune"]["inputs"]["parameters"].pop("params"))
    assert any("required input parameter 'params'" in e for e in errs)


# ---- kfp.local: the emitted IR runs ------------------------------------------------------------------


def _LOCAL_IMAGE_WARNING(fn):
    """kfp.local warns for any image without "python" in its name (the runtime image is a
    Python image) and for resource limits it cannot apply locally: both expected here."""
    fn = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")(fn)
    return pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning")(fn)


def _churn_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "examples/churn/data").mkdir(parents=True)
    shutil.copy(REPO / "tests/fixtures/churn.csv", repo / "examples/churn/data/customers.csv")
    return repo


def _run_local(tmp_path: Path, pipeline, repo: Path):
    import kfp.local
    from kfp import components

    path = tmp_path / "pipeline.yaml"
    path.write_bytes(kfp_backend.emit(pipeline)["pipeline.yaml"])
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    comp = components.load_component_from_file(str(path))
    return comp(repo_root=str(repo))


def _registered(repo: Path) -> list[str]:
    reg = repo / ".specops/registry/churn-classifier"
    return sorted(p.name for p in reg.iterdir()) if reg.is_dir() else []


@pytest.mark.slow
@_LOCAL_IMAGE_WARNING
def test_churn_runs_under_kfp_local_and_registers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = _churn_repo(tmp_path)
    _run_local(tmp_path, churn_pipeline(threshold=">= 0.7"), repo)
    assert "1" in _registered(repo)
    run_dirs = list((tmp_path / "root").iterdir())
    assert len(run_dirs) == 1
    decision = json.loads((run_dirs[0] / "gate-churn-auc/output/decision.json").read_text())
    assert decision["passed"] is True
    metrics = json.loads((run_dirs[0] / "evaluate/output/metrics.json").read_text())
    assert metrics["auc"] >= 0.7


@pytest.mark.slow
@_LOCAL_IMAGE_WARNING
def test_churn_gate_failure_fails_the_run_with_the_gate_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    repo = _churn_repo(tmp_path)
    with pytest.raises(RuntimeError) as exc:
        _run_local(tmp_path, churn_pipeline(threshold=">= 0.99"), repo)
    assert "gate-churn-auc" in str(exc.value)
    out = capsys.readouterr().out
    assert "specops: gate 'churn-auc' failed: auc = " in out and "< 0.99 (threshold '>= 0.99')" in out
    assert _registered(repo) == []  # register never ran


@pytest.mark.slow
@_LOCAL_IMAGE_WARNING
def test_nested_gate_conditions_and_command_steps_run_under_kfp_local(tmp_path, monkeypatch, capsys):
    """Two gates (nested condition sub-DAGs) and a user command step reading an input."""
    monkeypatch.chdir(tmp_path)
    repo = _churn_repo(tmp_path)
    base = churn_pipeline(threshold=">= 0.7")
    gate2 = dataclasses.replace(
        base.step("gate-churn-auc"), name="gate-accuracy",
        params={**base.step("gate-churn-auc").params, "gate": "accuracy",
                "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.5, "baseline_delta": None,
                             "raw": ">= 0.5"}]})
    register = dataclasses.replace(base.step("register"),
                                   inputs={**base.step("register").inputs, "gate_2": "gate-accuracy"})
    script = ("import os, pathlib; d = pathlib.Path(os.environ['SPECOPS_INPUT_REGISTRATION']);"
              "pathlib.Path(os.environ['SPECOPS_OUTPUT_DIR'], 'seen.txt').write_text("
              "','.join(sorted(p.name for p in d.iterdir())))")
    notify = Step("notify", "command", {}, inputs={"registration": "register"}, image="python:3.11",
                  command=(sys.executable, "-c", script))
    steps = base.steps[:4] + (gate2, register, notify)
    p = dataclasses.replace(base, steps=steps)
    assert kfp_backend.check(p) == []
    doc = _doc(kfp_backend.emit(p))
    assert set(doc["components"]["comp-condition-2"]["dag"]["tasks"]) == {"register", "notify"}
    _run_local(tmp_path, p, repo)
    assert "1" in _registered(repo)
    run_dir = next((tmp_path / "root").iterdir())
    assert "registration.json" in (run_dir / "notify/output/seen.txt").read_text()
