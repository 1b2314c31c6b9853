"""ZenML backend: emitted module and run config, strict run-config validation, capability
checks, and end-to-end runs on ZenML's real local stack (SQLite store in a temp dir)."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from specops.backends import zenml as Z
from specops.backends.zenml_run import run_local
from specops.ir import Resources, Schedule, Source, Step, Target
from tests.fixtures import ir_samples as S

REPO = Path(__file__).resolve().parents[2]
CHURN_CSV = REPO / "tests" / "fixtures" / "churn.csv"
ZENML_TARGET = Target(name="zen-prod", backend="zenml", provider="aws", region="eu-west-1",
                      artifact_store="s3://acme-zenml")
ZENML_GKE = Target(name="zen-gke", backend="zenml", provider="gcp", project="acme-ml", artifact_store="gs://acme-zenml")


def _doc(files: dict[str, bytes]) -> dict:
    return yaml.safe_load(files["run.yaml"])


# ---- emission ------------------------------------------------------------------------------


def test_emit_gives_module_and_run_config_byte_identical() -> None:
    a = Z.emit(S.churn_pipeline())
    b = Z.emit(S.churn_pipeline())
    assert set(a) == {"pipeline.py", "run.yaml"}
    assert a == b
    doc = _doc(a)
    # A run-name template: ZenML fills {date}/{time} at run time, the file holds no timestamp.
    assert doc["run_name"] == "churn-classifier-dev-{date}-{time}"
    assert doc["enable_cache"] is True
    assert doc["parameters"] == {"pipeline_parameters": {"repo_root": "."}}
    assert "/work" not in a["run.yaml"].decode() and "/tmp" not in a["run.yaml"].decode()


def test_emit_is_identical_across_hash_seeds() -> None:
    code = ("import hashlib; from tests.fixtures import ir_samples as S; from specops.backends import zenml as Z;"
            "f = Z.emit(S.llm_pipeline()); print(hashlib.sha256(f['pipeline.py'] + f['run.yaml']).hexdigest())")
    digests = set()
    for seed in ("0", "1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    f = Z.emit(S.llm_pipeline())
    assert digests == {hashlib.sha256(f["pipeline.py"] + f["run.yaml"]).hexdigest()}


def test_emit_does_not_import_zenml() -> None:
    code = ("import sys; from tests.fixtures import ir_samples as S; from specops.backends import zenml as Z;"
            "Z.check(S.churn_pipeline()); Z.emit(S.churn_pipeline()); Z.emit(S.llm_pipeline());"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('zenml', 'sklearn', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_config_steps_carry_parameters_resources_and_cache_policy() -> None:
    p = S.churn_pipeline()
    steps = _doc(Z.emit(p))["steps"]
    assert list(steps) == sorted(["check_customers", "train", "evaluate", "gate_churn_auc", "register"])
    assert steps["train"]["settings"] == {"resources": {"cpu_count": 2, "memory": "4GiB"}}
    assert steps["train"]["parameters"] == {"step_name": "train", "params": p.step("train").params,
                                            "input_names": ["data"]}
    assert steps["evaluate"]["parameters"]["input_names"] == ["data", "model"]
    assert steps["gate_churn_auc"]["parameters"]["params"]["metrics"][0]["raw"] == ">= 0.7"
    # Side-effecting steps always run; the rest may be served from ZenML's cache.
    assert steps["register"]["enable_cache"] is False
    assert "enable_cache" not in steps["train"]
    # The local stack has no images to build: no docker settings there.
    assert all("docker" not in s.get("settings", {}) for s in steps.values())


def test_non_local_target_gets_gpus_images_and_schedule() -> None:
    p = S.llm_pipeline(target=ZENML_TARGET, env="prod")
    p = dataclasses.replace(p, schedule=Schedule("0 3 * * 1", Source("models/support-llm.yaml", 30, 13)))
    doc = _doc(Z.emit(p))
    ft = doc["steps"]["finetune"]
    assert ft["settings"]["resources"] == {"cpu_count": 8, "gpu_count": 1, "memory": "32GiB"}
    assert ft["settings"]["docker"] == {"parent_image": S.IMAGE}
    assert ft["extra"]["specops"]["accelerator"] == "L4"
    assert doc["schedule"] == {"cron_expression": "0 3 * * 1"}
    assert Z.check(p) == []


def test_module_wires_fixed_steps_in_order() -> None:
    src = Z.emit(S.churn_pipeline())["pipeline.py"].decode()
    tree = ast.parse(src)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "_steps"]
    assert [(c.func.attr, next(k.value.value for k in c.keywords if k.arg == "id")) for c in calls] == [
        ("data_check", "check_customers"), ("train", "train"), ("evaluate", "evaluate"),
        ("gate", "gate_churn_auc"), ("register", "register")]
    register = calls[-1]
    inputs = next(k.value for k in register.keywords if k.arg == "inputs")
    # Same order as input_names in run.yaml: gate, metrics, model.
    assert [e.id for e in inputs.elts] == ["dir_gate_churn_auc", "dir_evaluate", "dir_train"]
    assert "PIPELINE_NAME = 'churn-classifier-dev'" in src


INJECTION = "x'); __import__('os').system('touch /tmp/specops-pwned'); (\"\"\" {{ 7*7 }} {% raw %}"


def _evil_pipeline():
    p = S.churn_pipeline()
    dataset = dict(p.steps[0].params["dataset"], uri="file://" + INJECTION, name=INJECTION)
    steps = (dataclasses.replace(p.steps[0], params={"dataset": dataset}),) + p.steps[1:]
    return dataclasses.replace(p, name="evil'); import os #{{ 7*7 }}", steps=steps,
                               labels={"team": INJECTION})


def test_spec_values_never_become_code() -> None:
    p = _evil_pipeline()
    files = Z.emit(p)
    src = files["pipeline.py"].decode()
    assert INJECTION not in src and "__import__" not in src and "49" not in src
    tree = ast.parse(src)  # still valid Python
    # The only spec-derived string in the module is the pipeline name, as one literal.
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert Z.zenml_pipeline_name(p) in consts
    assert not any("import os" in c for c in consts - {Z.zenml_pipeline_name(p)})
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert all(n.isidentifier() for n in names)
    assert Z.py_ident(p.name) + "_pipeline" in names
    # The value lands in run.yaml as data and reads back exactly.
    doc = _doc(files)
    assert doc["steps"]["check_customers"]["parameters"]["params"]["dataset"]["uri"] == "file://" + INJECTION
    assert doc["extra"]["specops"]["labels"] == {"team": INJECTION}
    assert Z.validate_run_config(doc) == []


def test_module_of_evil_pipeline_imports_without_side_effects(tmp_path: Path) -> None:
    """Importing the generated module defines the pipeline and runs nothing."""
    (tmp_path / "gen.py").write_bytes(Z.emit(_evil_pipeline())["pipeline.py"])
    env = dict(os.environ, ZENML_CONFIG_PATH=str(tmp_path / "zen"), ZENML_ANALYTICS_OPT_IN="false")
    out = subprocess.run([sys.executable, "-c", "import gen; print(gen.PIPELINE.name)"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("evil'); import os #{{ 7*7 }}-dev")
    assert not Path("/tmp/specops-pwned").exists()


def test_template_filters_refuse_non_identifiers_and_non_data() -> None:
    with pytest.raises(ValueError):
        Z._ident_filter("a); import os; (")
    with pytest.raises(ValueError):
        Z._ident_filter("class")
    with pytest.raises(ValueError):
        Z._pyrepr(object())
    assert Z._pyrepr({"b": 1, "a": "x'y"}) == "{'a': \"x'y\", 'b': 1}"


@pytest.mark.parametrize(("name", "ident"), [("check-data", "check_data"), ("3rd-step", "s_3rd_step"),
                                             ("class", "class_"), ("gate.auc", "gate_auc")])
def test_py_ident(name: str, ident: str) -> None:
    assert Z.py_ident(name) == ident


def test_json_safe_copy_is_the_json_round_trip() -> None:
    import json

    for value in ({"b": [1, 2.5, -0.0, None, True], "a": ("x", {"z": {}, "y": []})}, [10**30, "ü\n"], "s", 3,
                  {1: "int key", 2: (3,)}, {"k": 0.1}):
        got = Z._json_safe(value, "here")
        want = json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
        assert got == want and repr(got) == repr(want)
    for bad in ({"x": float("nan")}, {"x": object()}, [float("inf")]):
        with pytest.raises(ValueError, match="here: not JSON data"):
            Z._json_safe(bad, "here")


def test_yaml_output_equals_pyyaml_dump_and_round_trips() -> None:
    tricky = {"s": ["true", "no", "1.0", "0x1F", "null", "", "a: b", "- x", "#c", "line1\nline2",
                    "ünï", "'q'", '"dq"', "~", "2024-06-01", " lead", "trail "],
              "n": [0, -1, 1.5, 1e-9, True, False, None], "e": {}, "l": []}
    from specops.backends.yaml_emit import dump_reference

    # The fast C-emitter path writes what PyYAML's own representer would.
    assert Z._yaml_dump(tricky) == dump_reference(tricky)
    assert yaml.safe_load(Z._yaml_dump(tricky)) == tricky
    for p in (S.churn_pipeline(), S.llm_pipeline()):
        assert _doc(Z.emit(p)) == Z.run_config(p)


@pytest.mark.parametrize(("qty", "out"), [("4Gi", "4GiB"), ("1.5Gi", "1536MiB"), ("8G", "8GB"),
                                          ("512Mi", "512MiB"), ("1e9", "1GB"), ("1000", "1KB"),
                                          ("1023", "1023B"), ("100m", None), ("abc", None), ("0", None)])
def test_memory_quantities(qty: str, out: str | None) -> None:
    assert Z.zenml_memory(qty) == out


@pytest.mark.parametrize(("qty", "out"), [("2", 2), ("500m", 0.5), ("1.5", 1.5), ("0", None), ("2 cores", None)])
def test_cpu_quantities(qty: str, out: float | None) -> None:
    assert Z.cpu_count(qty) == out


# ---- strict run-config validation -----------------------------------------------------------


def test_gcp_project_reaches_containerised_steps_environment() -> None:
    """A containerised orchestrator's steps get the target's GCP project as GOOGLE_CLOUD_PROJECT
    (DockerSettings.environment; validated strictly below, as `llm-zenml-gke`)."""
    doc = _doc(Z.emit(S.llm_pipeline(target=ZENML_GKE, env="prod")))
    envs = [step["settings"]["docker"].get("environment") for step in doc["steps"].values()]
    assert envs and all(e == {"GOOGLE_CLOUD_PROJECT": "acme-ml"} for e in envs)


@pytest.mark.parametrize("pipeline", [S.churn_pipeline(), S.llm_pipeline(),
                                      S.llm_pipeline(target=ZENML_TARGET, env="prod"),
                                      S.llm_pipeline(target=ZENML_GKE, env="prod")],
                         ids=["churn-local", "llm-gcp", "llm-zenml-remote", "llm-zenml-gke"])
def test_emitted_run_config_is_valid_strictly(pipeline) -> None:
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    doc = _doc(Z.emit(pipeline))
    assert Z.validate_run_config(doc, step_ids=Z.step_ids(pipeline).values()) == []
    conf = PipelineRunConfiguration.model_validate(doc)
    assert conf.enable_cache is True and set(conf.steps) == set(Z.step_ids(pipeline).values())


@pytest.mark.parametrize(("path", "key", "expect"), [
    ((), "enable_cach", "enable_cach: unknown key for PipelineRunConfiguration"),
    (("steps", "train"), "enable_cach", "steps.train.enable_cach: unknown key for StepConfigurationUpdate"),
    (("steps", "train", "settings", "resources"), "cpu_cont", "steps.train.settings.resources.cpu_cont: unknown key for ResourceSettings"),
    (("steps", "train", "settings"), "resourcs", "steps.train.settings.resourcs: unknown settings key; did you mean 'resources'?"),
    (("schedule",), "cron_expresion", "schedule.cron_expresion: unknown key for Schedule"),
])
def test_validator_catches_misspelled_keys_zenml_ignores(path, key, expect) -> None:
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    doc = _doc(Z.emit(S.churn_pipeline()))
    doc["schedule"] = {"cron_expression": "0 3 * * *"}
    node = doc
    for part in path:
        node = node[part]
    node[key] = node.pop(key.replace("cach", "cache").replace("cont", "count").replace("resourcs", "resources")
                         .replace("expresion", "expression"), 1)
    errors = Z.validate_run_config(doc)
    assert any(e.startswith(expect) for e in errors), errors
    assert any("did you mean" in e for e in errors)
    if key != "cron_expresion":  # (a schedule without its cron is also a value error)
        PipelineRunConfiguration.model_validate(doc)  # ZenML itself says nothing


def test_validator_reports_values_and_unknown_steps() -> None:
    doc = _doc(Z.emit(S.churn_pipeline()))
    doc["steps"]["train"]["settings"]["resources"]["memory"] = "4Gi"
    doc["steps"]["trian"] = {"enable_cache": True}
    doc["execution_mode"] = "sometimes"
    errors = Z.validate_run_config(doc, step_ids=Z.step_ids(S.churn_pipeline()).values())
    assert any(e.startswith("steps.train.settings.resources.memory: String should match pattern") for e in errors)
    assert "steps.trian: no step with this id in the pipeline; did you mean 'train'?" in errors
    assert any(e.startswith("execution_mode: Input should be") for e in errors)
    assert Z.validate_run_config(["not", "a", "mapping"]) == ["<root>: a run configuration is a mapping, got list"]
    doc2 = {"settings": {"orchestrator.kubernetes": {"x": 1}}}
    assert "cannot be checked offline" in Z.validate_run_config(doc2)[0]


# ---- capability check -----------------------------------------------------------------------


def test_schedule_on_local_target_is_an_error_at_the_schedule() -> None:
    diags = Z.check(S.churn_pipeline(schedule="0 3 * * *"))
    assert len(diags) == 1
    d = diags[0]
    assert (d.severity, d.code, d.file, d.pos.line, d.pos.col) == ("error", "unsupported", "models/churn.yaml", 40, 13)
    assert d.message == ("target 'local' (zenml local orchestrator) cannot schedule; remove `schedule` for this "
                         "environment or use a target whose orchestrator schedules")


def test_accelerator_on_local_target_is_a_warning_per_step() -> None:
    diags = Z.check(S.llm_pipeline(target=S.LOCAL, env="dev"))
    assert [(d.severity, d.code) for d in diags] == [("warning", "unsupported")] * 2
    assert {d.message.split("'")[1] for d in diags} == {"finetune", "evaluate"}
    assert "1 x L4" in diags[0].message and diags[0].file == "models/support-llm.yaml"


def test_check_reports_bad_quantities_and_clean_pipeline_passes() -> None:
    assert Z.check(S.churn_pipeline()) == []
    p = S.churn_pipeline()
    bad = dataclasses.replace(p.step("train"), resources=Resources(cpu="lots", memory="1.5"))
    p = dataclasses.replace(p, steps=tuple(bad if s.name == "train" else s for s in p.steps))
    diags = Z.check(p)
    assert [(d.severity, d.code, d.pos.line) for d in diags] == [("error", "value", 10)] * 2


def test_dangling_input_is_a_diagnostic_not_a_traceback() -> None:
    p = S.churn_pipeline()
    bad = dataclasses.replace(p.step("train"), inputs={"data": "check-custmers"})
    p = dataclasses.replace(p, steps=tuple(bad if s.name == "train" else s for s in p.steps))
    assert [(d.code, d.pos.line) for d in Z.check(p)] == [("unresolved-ref", 10)]
    with pytest.raises(ValueError, match="names no step 'check-custmers'"):
        Z.emit(p)


# ---- end to end on ZenML's local stack --------------------------------------------------------


@pytest.fixture(scope="module")
def zen(tmp_path_factory):
    """A repo root holding the churn data where ir_samples' uri points, and one ZenML store."""
    base = tmp_path_factory.mktemp("zenml-e2e")
    repo = base / "repo"
    (repo / "examples" / "churn" / "data").mkdir(parents=True)
    shutil.copy(CHURN_CSV, repo / "examples" / "churn" / "data" / "customers.csv")
    return base, repo, base / "zenml-config"


@pytest.mark.slow
def test_churn_pipeline_runs_and_gate_passes(zen) -> None:
    base, repo, config = zen
    r = run_local(Z.emit(S.churn_pipeline(threshold=">= 0.7")), workdir=base / "pass", repo_root=repo,
                    zenml_config_path=config, timeout=300)
    assert r.ok, (r.error, Path(r.log).read_text()[-3000:])
    assert r.run_name.startswith("churn-classifier-dev-") and r.error is None
    assert list(r.steps) == ["check-customers", "train", "evaluate", "gate-churn-auc", "register"]
    assert all(s.status in ("completed", "cached") for s in r.steps.values())
    assert r.steps["check-customers"].result["rows"] == 200
    auc = r.steps["evaluate"].result["metrics"]["auc"]
    assert 0.7 <= auc <= 1.0
    assert r.steps["gate-churn-auc"].result["passed"] is True
    assert r.steps["register"].result["version"] == "1"
    assert (repo / ".specops" / "registry" / "churn-classifier" / "1").is_dir()
    assert (config / "local_stores").is_dir()  # all ZenML state under the given config path


@pytest.mark.slow
def test_churn_pipeline_gate_failure_fails_the_run_with_its_message(zen) -> None:
    base, repo, config = zen
    r = run_local(Z.emit(S.churn_pipeline(threshold=">= 0.99")), workdir=base / "fail", repo_root=repo,
                    zenml_config_path=config, timeout=300)
    assert r.status == "failed"
    assert r.error.startswith("gate 'churn-auc' failed: auc = ") and "< 0.99 (threshold '>= 0.99')" in r.error
    assert r.steps["gate-churn-auc"].status == "failed"
    assert r.steps["gate-churn-auc"].error == r.error
    assert r.steps["register"].status == "skipped"
    assert r.steps["evaluate"].status in ("completed", "cached")


@pytest.mark.slow
def test_command_step_runs_argv_without_shell(zen) -> None:
    base, repo, config = zen
    p = S.churn_pipeline()
    script = ("import json, os, pathlib; d = pathlib.Path(os.environ['SPECOPS_INPUT_DATA']);"
              "out = pathlib.Path(os.environ['SPECOPS_OUTPUT_DIR']);"
              "(out / 'result.json').write_text(json.dumps({'files': sorted(x.name for x in d.iterdir()),"
              " 'arg': os.environ['GREETING']}))")
    cmd = Step("custom", "command", {"env": {"GREETING": "hi; rm -rf /"}}, inputs={"data": "check-customers"},
               command=(sys.executable, "-c", script), source=Source("models/churn.yaml", 50, 3))
    p = dataclasses.replace(p, name="churn-command", steps=(p.steps[0], cmd))
    assert Z.check(p) == []
    r = run_local(Z.emit(p), workdir=base / "command", repo_root=repo, zenml_config_path=config, timeout=300)
    assert r.ok, (r.error, Path(r.log).read_text()[-3000:])
    assert r.steps["custom"].result["arg"] == "hi; rm -rf /"
    assert "result.json" in r.steps["custom"].result["files"]
