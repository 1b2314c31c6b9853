"""Lineage through datasets: custom steps, batch scoring, Datasets made by models' steps.

A small repo (two models: `upstream` with prep -> transform -> train -> predict and a batch
scoring step, `downstream` training on upstream's predictions) is lowered to IR and compiled
to all three orchestrators; each problem of wiring is an error at its own line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ir.lower import lower_env
from specops.ops.plan import topo_order
from specops.ops.resources import desired_resources
from specops.resolve.graph import graph_document

PROJECT = """\
apiVersion: specops.dev/v1alpha1
kind: Project
metadata: {name: chain}
spec:
  targets:
    local: {backend: zenml, provider: local}
    gcp: {backend: kfp, provider: gcp, project: acme-mobility, region: us-central1, host: https://kfp.acme.internal,
          artifactStore: gs://acme-artifacts/chain}
    aws: {backend: sagemaker, provider: aws, region: us-east-1, artifactStore: s3://acme-artifacts/chain,
          roleArn: "arn:aws:iam::123456789012:role/sm"}
  environments:
    dev: {target: local}
    staging: {target: gcp}
    prod: {target: aws}
"""

DATA = """\
apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: raw}
spec:
  source: {uri: file://data/raw.csv, format: csv, version: v1}
  columns: [{name: x, type: float}, {name: y, type: float}]
  splits: {full: 1.0}
---
apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: clean}
spec:
  producedBy: {model: upstream, step: transform, output: cleaned}
  source: {format: csv}
  columns: [{name: x, type: float}, {name: y, type: float}]
  splits: {train: 0.8, test: 0.2}
---
apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: scored}
spec:
  producedBy: {model: upstream, step: score-all}
  source: {format: parquet}
  splits: {train: 0.8, test: 0.2}
"""

UPSTREAM = """\
apiVersion: specops.dev/v1alpha1
kind: Model
metadata: {name: upstream}
spec:
  type: classical
  datasets: [{dataset: clean}]
  classical: {algorithm: linear_regression, task: regression, target: y, features: [x]}
  steps:
    - name: prep
      kind: prep
      command: [python, steps/prep.py]
      args: ["--in", "${{inputs.raw}}", "--out", "${{outputs.rows}}"]
      inputs: {raw: raw}
      outputs: {rows: {type: table}}
    - name: transform
      kind: transform
      command: [python, steps/transform.py]
      inputs: {rows: prep.rows}
      outputs: {cleaned: {type: table}}
    - name: report
      kind: score
      command: [python, steps/report.py]
      inputs: {model: {from: train.model, type: model}, metrics: evaluate.metrics}
      outputs: {report: {type: folder}}
  batch:
    - {name: score-all, dataset: clean}
"""

DOWNSTREAM = """\
apiVersion: specops.dev/v1alpha1
kind: Model
metadata: {name: downstream}
spec:
  type: classical
  datasets: [{dataset: scored}]
  classical: {algorithm: linear_regression, task: regression, target: y, features: [prediction]}
"""


def make_repo(tmp_path: Path, upstream: str = UPSTREAM, data: str = DATA) -> Path:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "raw.csv").write_text("x,y\n1,2\n2,4\n")
    (repo / "specops.yaml").write_text(PROJECT)
    (repo / "data.yaml").write_text(data)
    (repo / "upstream.yaml").write_text(upstream)
    (repo / "downstream.yaml").write_text(DOWNSTREAM)
    return repo


def errors(repo: Path) -> list[str]:
    return [f"{d.file}:{d.pos.line if d.pos else 0}: {d.message} [{d.code}]"
            for d in analyze(repo).diagnostics.sorted() if d.severity == "error"]


def test_steps_run_in_lifecycle_order_with_wires_by_name(tmp_path):
    resolved = analyze(make_repo(tmp_path))
    assert not resolved.diagnostics.has_errors, resolved.diagnostics.sorted()
    pipes = {p.model: p for p in lower_env(resolved, "dev")[0]}
    up = pipes["upstream"]
    names = [s.name for s in up.steps]
    assert names.index("check-raw") < names.index("prep") < names.index("transform") < names.index("check-clean") \
        < names.index("train") < names.index("evaluate") < names.index("report")
    assert names.index("register") < names.index("score-all")
    transform, report = up.step("transform"), up.step("report")
    assert transform.kind == "command" and transform.inputs == {"rows": "prep"}
    assert transform.params["input_paths"] == {"rows": "rows"} and transform.params["outputs"] == {"cleaned": "table"}
    assert report.inputs == {"metrics": "evaluate", "model": "train"}
    assert up.step("prep").command == ("python", "steps/prep.py", "--in", "${{inputs.raw}}", "--out",
                                       "${{outputs.rows}}")
    # The dataset made inside the pipeline is read from the transform step's output folder.
    check = up.step("check-clean")
    assert check.inputs == {"source": "transform"}
    assert check.params["dataset"]["input"] == {"name": "source", "path": "cleaned/data.csv"}
    # Batch scoring waits for the gates (register) and publishes for the downstream model.
    batch = up.step("score-all")
    assert batch.kind == "predict" and batch.inputs == {"data": "check-clean", "model": "train",
                                                       "registration": "register"}
    assert batch.params["publish"] == {"predictions": "file://.specops/artifacts/dev/upstream/outputs/score-all/predictions"}
    down = pipes["downstream"].step("check-scored").params["dataset"]
    assert down["uri"] == "file://.specops/artifacts/dev/upstream/outputs/score-all/predictions/data.parquet"
    assert down["version"].startswith("pipeline-")


def test_an_upstream_change_is_a_new_version_downstream_and_orders_apply(tmp_path):
    repo = make_repo(tmp_path)
    resolved = analyze(repo)
    before = {p.model: p for p in lower_env(resolved, "dev")[0]}
    build = compile_repo(resolved, ["dev"])
    desired = {d.address: d for d in desired_resources(resolved, build, "dev")}
    assert desired["zenml_pipeline.downstream"].depends_on == ("zenml_pipeline.upstream",)
    # Names alone would put downstream first; lineage puts it after upstream.
    # (each model's registry aliases move after its own pipeline)
    assert topo_order({a: list(d.depends_on) for a, d in desired.items()}) == [
        "zenml_pipeline.upstream", "registered_model.upstream", "zenml_pipeline.downstream",
        "registered_model.downstream"]
    (repo / "upstream.yaml").write_text(UPSTREAM.replace("features: [x]}", "features: [x]}\n  hyperparameters: "
                                                                          "{fit_intercept: false}"))
    after = {p.model: p for p in lower_env(analyze(repo), "dev")[0]}
    v0 = before["downstream"].step("check-scored").params["dataset"]["version"]
    v1 = after["downstream"].step("check-scored").params["dataset"]["version"]
    assert v0 != v1  # the downstream pipeline changes: plan updates it (retrain + gates)
    graph = graph_document(resolved.envs["dev"])
    assert {"from": "Model/upstream", "to": "Dataset/scored"} in graph["edges"]


def test_compiles_to_all_three_orchestrators(tmp_path):
    resolved = analyze(make_repo(tmp_path))
    build = compile_repo(resolved)
    assert not build.diagnostics.has_errors, build.diagnostics.sorted()
    files = build.files()
    sm = json.loads(files["prod/sagemaker/upstream/definition.json"])
    prep = next(s for s in sm["Steps"] if s["Name"] == "prep")
    args = prep["Arguments"]
    assert args["AppSpecification"]["ContainerEntrypoint"] == [
        "python", "steps/prep.py", "--in", "/opt/ml/processing/input/raw", "--out", "/opt/ml/processing/output/rows"]
    assert args["Environment"]["SPECOPS_OUTPUT_ROWS"] == "/opt/ml/processing/output/rows"
    batch = next(s for s in _all_steps(sm["Steps"]) if s["Name"] == "score-all")
    outs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in batch["Arguments"]["ProcessingOutputConfig"]["Outputs"]}
    assert outs["publish-predictions"] == "s3://acme-artifacts/chain/prod/upstream/outputs/score-all/predictions"
    kfp = files["staging/kfp/upstream/pipeline.yaml"].decode()
    assert "comp-transform" in kfp and "score-all" in kfp
    assert b"def " in files["dev/zenml/upstream/pipeline.py"]


def _all_steps(steps: list) -> list:
    out = []
    for s in steps:
        out.append(s)
        for key in ("IfSteps", "ElseSteps"):
            out.extend(_all_steps(s.get("Arguments", {}).get(key, [])))
    return out


@pytest.mark.parametrize("old,new,expected", [
    ("inputs: {rows: prep.rows}", "inputs: {rows: prep.row}",
     "upstream.yaml:18: no step output 'prep.row' in model 'upstream'; did you mean 'prep.rows'? [unresolved-ref]"),
    ("inputs: {model: {from: train.model, type: model}", "inputs: {model: {from: train.model, type: table}",
     "upstream.yaml:23: input 'model' expects table, but 'train.model' carries model [value]"),
    ("      kind: score\n", "      kind: featurize\n",
     "upstream.yaml:21: step 'report' is a featurize step but reads what training makes"),
    ('"${{outputs.rows}}"', '"${{outputs.row}}"',
     "upstream.yaml:12: '${{outputs.row}}' names no output of step 'prep'; did you mean 'rows'? [unresolved-ref]"),
    ("    - name: report\n", "    - name: evaluate\n",
     "upstream.yaml:20: step name 'evaluate' is the lifecycle's own; pick another [value]"),
])
def test_wiring_mistakes_are_errors_at_their_line(tmp_path, old, new, expected):
    assert old in UPSTREAM
    errs = errors(make_repo(tmp_path, UPSTREAM.replace(old, new)))
    assert any(e.startswith(expected.split(" [")[0]) for e in errs), errs


def test_a_model_training_on_its_own_predictions_is_a_cycle_at_its_line(tmp_path):
    data = DATA.replace("producedBy: {model: upstream, step: transform, output: cleaned}",
                        "producedBy: {model: upstream, step: score-all}")
    errs = errors(make_repo(tmp_path, data=data))
    assert any("reference cycle: Dataset/clean -> Model/upstream -> Dataset/clean" in e for e in errs), errs


def test_producer_step_and_output_are_checked(tmp_path):
    data = DATA.replace("step: transform, output: cleaned", "step: transfrom, output: cleaned")
    errs = errors(make_repo(tmp_path, data=data))
    assert errs == ["data.yaml:13: model 'upstream' has no step 'transfrom'; did you mean 'transform'? "
                    "[unresolved-ref]"]  # and no cycle: an unknown step is not a lineage edge
    data = DATA.replace("step: transform, output: cleaned", "step: transform, output: rows")
    errs = errors(make_repo(tmp_path / "b", data=data))
    assert any("declares no output 'rows'" in e for e in errs), errs


def test_the_example_repo_is_reused_as_written():
    root = Path(__file__).resolve().parents[3] / "examples" / "nyc-taxi"
    resolved = analyze(root)
    assert not resolved.diagnostics.has_errors, resolved.diagnostics.sorted()
    pipes = {p.model: p for p in lower_env(resolved, "dev")[0]}
    assert [s.name for s in pipes["nyc-taxi-model"].steps if s.kind == "command"] == [
        "prep", "transform", "predict", "score"]
    assert shutil.which("python")  # the steps' argv starts with it
