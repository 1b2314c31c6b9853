"""Classical serving on the local platform: MLServer 1.7.1 run by the `local_server` provider.

Also: an XGBoost / LightGBM model on numeric features is trained without preprocessing and its
booster exported, which MLServer's own XGBoost / LightGBM runtime serves with the same
predictions.

Real parts: the churn example's model is trained and registered by the step runtime (what
the local target runs), the repo is compiled, and the provider starts the real MLServer from
.venv-mlserver (tools/setup_mlserver_venv.sh) with the compiled settings; its Open Inference
(V2) predictions over HTTP must equal the pipeline's own in-process predictions. Then plan's
refresh sees a stopped server as drift, and delete (prune) stops it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import urllib.request
from pathlib import Path

import pytest

from specops.backends import local_serving, mlserver
from specops.backends.local_provider import LocalServerProvider
from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ir import Serving
from specops.ir.lower import lower_env
from specops.ops.resources import desired_resources
from specops.runtime import run_step
from specops.runtime.predict import load_model
from specops.runtime.tables import load_split_table
from specops.runtime.train import feature_matrix
from specops.state import ResourceState
from tests.fixtures.ir_samples import LOCAL

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"

SERVING = """\
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata:
  name: churn-api
spec:
  model: churn-classifier
"""


def test_model_settings_name_the_runtime_and_the_inputs_in_feature_order():
    node = Serving(name="churn-api", env="dev", target=LOCAL, model="churn", model_uri="", model_config=None,
                   engine_version="1.7.1", engine_args={}, accelerator="", accelerator_count=0,
                   engine="mlserver", runtime="sklearn", features=(("tenure_months", "INT64"), ("contract", "BYTES")))
    ms = mlserver.model_settings(node)
    assert ms["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert ms["parameters"] == {"content_type": "pd", "uri": "./model.joblib"}
    assert [i["name"] for i in ms["inputs"]] == ["tenure_months", "contract"]
    xgb = mlserver.model_settings(Serving(**{**node.__dict__, "runtime": "xgboost"}))
    assert xgb["implementation"] == "mlserver_xgboost.XGBoostModel" and xgb["parameters"] == {"uri": "./model.ubj"}
    assert xgb["inputs"] == [{"datatype": "FP64", "name": "input-0", "shape": [-1, 2]}]
    doc = local_serving.server_document(node)
    assert doc["model_file"] == "model.joblib" and doc["registry"] == "churn"


def _v2_request(table, features: list[dict]) -> dict:
    datatypes = {"numeric": "FP64", "categorical": "BYTES"}
    inputs = []
    for f in features:
        values = table.column(f["name"]).to_pylist()
        if f["type"] == "numeric":
            values = [float(v) for v in values]
        inputs.append({"name": f["name"], "datatype": datatypes[f["type"]], "shape": [len(values)], "data": values})
    return {"inputs": inputs}


@pytest.mark.slow
@pytest.mark.skipif(not MLSERVER.exists(), reason="no .venv-mlserver: run tools/setup_mlserver_venv.sh (.ci/run does)")
def test_mlserver_serves_the_churn_model_with_in_process_predictions(tmp_path):
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns(".specops", "build"))
    (repo / "serving").mkdir()
    (repo / "serving" / "churn-api.yaml").write_text(SERVING)
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, resolved.diagnostics.sorted()
    build = compile_repo(resolved, ["dev"])
    assert not build.diagnostics.has_errors
    (d,) = [x for x in desired_resources(resolved, build, "dev") if x.type == "local_server"]
    assert d.depends_on == ("zenml_pipeline.churn-classifier",)

    # What the pipeline's steps do on the local target: check, train, register.
    (p,) = lower_env(resolved, "dev")[0]
    outs = {}
    for step in p.steps:
        if step.kind not in ("data_check", "train", "register"):
            continue
        out = tmp_path / "steps" / step.name
        run_step(step.kind, step.params, inputs={k: str(outs[v]) for k, v in step.inputs.items() if v in outs},
                 output_dir=str(out), repo_root=str(repo))
        outs[step.name] = out
    model, meta = load_model(outs["train"], "test")
    table, _ = load_split_table(outs["check-customers"], "test", "test")
    expected = model.predict(feature_matrix(table, meta["features"])).tolist()

    provider = LocalServerProvider("dev", repo, {"mlserver": str(MLSERVER)})
    ids, outputs = provider.apply(d, None)
    try:
        body = json.dumps(_v2_request(table, meta["features"])).encode()
        req = urllib.request.Request(outputs["infer"], data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        (out,) = answer["outputs"]
        assert out["name"] == "predict" and out["data"] == expected and len(expected) == table.num_rows
        assert outputs["model_version"].startswith("sha-")

        st = ResourceState(address=d.address, type=d.type, name=d.name, content_hash=d.content_hash, ids=ids,
                           outputs=outputs, attributes=d.attributes, depends_on=list(d.depends_on))
        assert provider.read(d, st).exists  # plan's health check
        os.kill(int(ids["pid"]), signal.SIGTERM)
        os.waitpid(int(ids["pid"]), 0)
        assert provider.read(d, st).exists is False  # a stopped server is drift
        ids, outputs = provider.apply(d, st)  # reconcile restarts it
        st.ids = ids
        assert provider.read(d, st).exists
    finally:
        provider.delete(ResourceState(address=d.address, type=d.type, name=d.name, content_hash=d.content_hash,
                                      ids=ids, outputs=outputs, attributes=d.attributes, depends_on=[]))
    assert not (repo / ".specops" / "serving" / "dev" / "churn-api").exists()


NUMERIC_REPO = {
    "specops.yaml": """\
apiVersion: specops.dev/v1alpha1
kind: Project
metadata: {name: boosters}
spec:
  targets: {local: {backend: zenml}}
  environments: {dev: {target: local}}
""",
    "data.yaml": """\
apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: points}
spec:
  source: {uri: file://points.csv, format: csv, version: v1}
  columns: [{name: a, type: float}, {name: b, type: float}, {name: c, type: int}, {name: y, type: float}]
""",
    "model.yaml": """\
apiVersion: specops.dev/v1alpha1
kind: Model
metadata: {name: booster}
spec:
  type: classical
  datasets: [{dataset: points}]
  classical: {algorithm: ALGO, task: regression, target: y}
  hyperparameters: {n_estimators: 20}
---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {name: booster-api}
spec:
  model: booster
""",
}


@pytest.mark.slow
@pytest.mark.skipif(not MLSERVER.exists(), reason="no .venv-mlserver: run tools/setup_mlserver_venv.sh (.ci/run does)")
@pytest.mark.parametrize("algo,runtime", [("xgboost", "xgboost"), ("lightgbm", "lightgbm")])
def test_booster_runtimes_serve_the_exported_booster(tmp_path, algo, runtime):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in NUMERIC_REPO.items():
        (repo / name).write_text(text.replace("ALGO", algo))
    rng = random.Random(3)
    rows = ["a,b,c,y"] + [f"{a:.3f},{b:.3f},{c},{2 * a - b + 0.5 * c + rng.gauss(0, 0.1):.3f}"
                          for a, b, c in ((rng.random(), rng.random(), rng.randrange(5)) for _ in range(300))]
    (repo / "points.csv").write_text("\n".join(rows) + "\n")
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, resolved.diagnostics.sorted()
    build = compile_repo(resolved, ["dev"])
    settings = json.loads(build.files()["dev/serving/booster-api/model-settings.json"])
    assert settings["implementation"] == mlserver.RUNTIMES[runtime]
    (d,) = [x for x in desired_resources(resolved, build, "dev") if x.type == "local_server"]
    (p,) = lower_env(resolved, "dev")[0]
    assert p.step("train").params["export"] == runtime
    outs = {}
    for step in p.steps:
        if step.kind in ("data_check", "train", "register"):
            out = tmp_path / "steps" / step.name
            run_step(step.kind, step.params, inputs={k: str(outs[v]) for k, v in step.inputs.items() if v in outs},
                     output_dir=str(out), repo_root=str(repo))
            outs[step.name] = out
    model, meta = load_model(outs["train"], "test")
    table, _ = load_split_table(outs["check-points"], "test", "test")
    X = feature_matrix(table, meta["features"]).astype(float)
    expected = model.predict(X).tolist()
    provider = LocalServerProvider("dev", repo, {"mlserver": str(MLSERVER)})
    ids, outputs = provider.apply(d, None)
    try:
        body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(X.shape), "data": X.ravel().tolist()}]}
        req = urllib.request.Request(outputs["infer"], data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            (out,) = json.loads(r.read())["outputs"]
        assert out["data"] == pytest.approx(expected, rel=1e-6) and len(expected) == table.num_rows
    finally:
        provider.delete(ResourceState(address=d.address, type=d.type, name=d.name, content_hash=d.content_hash,
                                      ids=ids, outputs=outputs, attributes=d.attributes, depends_on=[]))
