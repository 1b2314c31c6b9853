"""MLflow as the registry, from the step runtime: the register step tracks the run and registers
the version with its lineage and model card; baselines come from the version an environment
serves; a pinned version is fetched by digest. All against MLflow's real SQLite store (the
embedded default), read back with MLflow's own client.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from specops.runtime import StepError, StepFailed, run_step, tracking
from tests.compiler.runtime.test_runtime_steps import FEATURES, HALVES, dataset, make_repo


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The churn fixture checked, a logistic regression trained and evaluated, and its gate."""
    base = tmp_path_factory.mktemp("tracked")
    repo = make_repo(base / "repo")
    out = base / "out"
    run_step("data_check", {"dataset": {**dataset(splits=HALVES), "license": "proprietary"}}, inputs={},
             output_dir=str(out / "data"), repo_root=str(repo))
    run_step("train", {"algorithm": "logistic_regression", "task": "classification", "target": "churned",
                       "features": FEATURES, "hyperparameters": {"C": 1.0}, "seed": 0},
             inputs={"data": str(out / "data")}, output_dir=str(out / "model"), repo_root=str(repo))
    run_step("evaluate", {"task": "classification", "metrics": ["auc", "accuracy"]},
             inputs={"model": str(out / "model"), "data": str(out / "data")}, output_dir=str(out / "eval"),
             repo_root=str(repo))
    run_step("gate", {"gate": "churn-auc", "metrics": [{"metric": "auc", "raw": ">= 0.5"}]},
             inputs={"metrics": str(out / "eval")}, output_dir=str(out / "gate"), repo_root=str(repo))
    return out


def register(out: Path, repo: Path, tmp: Path, *, env: str = "dev", spec_digest: str = "a" * 64,
             model_dir: Path | None = None, **over) -> dict:
    params = {"registry": "churn-classifier", "model": "churn", "version": None, "aliases": ["candidate"],
              "env": env, "spec_digest": spec_digest, "description": "Predicts churn for the retention team.",
              "tracking": {"uri": None}, "pin": None, **over}
    return run_step("register", params, inputs={"model": str(model_dir or out / "model"), "metrics": str(out / "eval"),
                                                "gate": str(out / "gate"), "data": str(out / "data")},
                    output_dir=str(tmp / f"reg-{env}-{spec_digest[:4]}"), repo_root=str(repo))


def client_of(repo: Path):
    from mlflow import MlflowClient

    uri = tracking.embedded_uri(repo)
    return MlflowClient(uri, uri)


def test_register_tracks_the_run_and_registers_the_version_with_lineage(chain, tmp_path):
    repo = make_repo(tmp_path / "repo")
    res = register(chain, repo, tmp_path)
    assert res["mlflow_version"] == "1" and res["changed"] is True
    assert res["mlflow_aliases"] == ["dev", "dev-candidate"]
    c = client_of(repo)
    rm = c.get_registered_model("churn-classifier")
    assert rm.aliases == {"dev": 1, "dev-candidate": 1}
    mv = c.get_model_version("churn-classifier", "1")
    tags = mv.tags
    assert tags["specops.digest"] == f"sha256:{res['sha256']}" and tags["specops.spec_digest"] == "a" * 64
    assert tags["specops.env"] == "dev"
    datasets = json.loads(tags["specops.datasets"])
    assert [d["name"] for d in datasets] == ["churn"] and datasets[0]["version"] == "v1"
    assert datasets[0]["digest"].startswith("sha256:")
    gates = json.loads(tags["specops.gates.dev"])
    assert gates["churn-auc"]["passed"] is True and gates["churn-auc"]["metrics"]["auc"] > 0.5
    # The version links its run: one experiment per model, params, metrics, artifacts.
    run = c.get_run(mv.run_id)
    assert c.get_experiment(run.info.experiment_id).name == "churn"
    assert run.data.params["algorithm"] == "logistic_regression" and run.data.params["hyperparameters.C"] == "1.0"
    assert run.data.metrics["auc"] > 0.5 and run.info.status == "FINISHED"
    assert sorted(a.path for a in c.list_artifacts(mv.run_id)) == ["data", "gates", "model", "model_card"]
    assert mv.source.endswith("/model")
    # The model card: Hugging Face format, read back with huggingface_hub.
    from huggingface_hub import ModelCard

    card = ModelCard.load(c.download_artifacts(mv.run_id, "model_card/README.md", str(tmp_path)))
    assert card.data.library_name == "scikit-learn" and card.data.datasets == ["churn"]
    assert "Predicts churn for the retention team." in card.text
    assert "| churn | v1 | sha256:" in card.text and "| churn | rowCount | True |" in card.text
    assert "| churn-auc (dev) | True |" in card.text

    # Idempotent: the same spec and files register nothing new.
    again = register(chain, repo, tmp_path)
    assert again["mlflow_version"] == "1" and again["changed"] is False
    assert len(c.search_model_versions("name='churn-classifier'")) == 1


def test_gate_baseline_is_what_the_environment_serves(chain, tmp_path):
    """A relative threshold compares with the metrics recorded on the version the env's alias
    points at: move the alias, and the same evaluation gets the other verdict."""
    repo = make_repo(tmp_path / "repo")
    c = client_of(repo)
    tracking.ensure_registered_model(c, "churn-classifier", "churn")
    auc = json.loads((chain / "eval" / "metrics.json").read_text())["auc"]
    weaker = c.create_model_version("churn-classifier", "file:///m1", tags={
        "specops.gates.prod": json.dumps({"churn-auc": {"passed": True, "metrics": {"auc": auc - 0.05}}})})
    stronger = c.create_model_version("churn-classifier", "file:///m2", tags={
        "specops.gates.prod": json.dumps({"churn-auc": {"passed": True, "metrics": {"auc": auc + 0.05}}})})
    params = {"gate": "churn-auc", "metrics": [{"metric": "auc", "raw": ">= baseline - 0.01"}],
              "on_missing_baseline": "fail",
              "baseline_from": {"registry": "churn-classifier", "env": "prod", "tracking": {"uri": None}}}

    def verdict(name: str) -> dict:
        out = tmp_path / name
        try:
            run_step("gate", params, inputs={"metrics": str(chain / "eval")}, output_dir=str(out), repo_root=str(repo))
        except StepFailed:
            pass
        return json.loads((out / "decision.json").read_text())

    # Nothing serves in prod yet: the missing baseline follows onMissingBaseline.
    with pytest.raises(StepFailed, match="auc: no baseline value"):
        run_step("gate", params, inputs={"metrics": str(chain / "eval")}, output_dir=str(tmp_path / "g0"),
                 repo_root=str(repo))
    c.set_registered_model_alias("churn-classifier", "prod", weaker.version)
    d = verdict("g1")
    assert d["passed"] is True and d["baseline_version"] == str(weaker.version)
    assert d["checks"][0]["baseline"] == pytest.approx(auc - 0.05)
    c.set_registered_model_alias("churn-classifier", "prod", stronger.version)
    d = verdict("g2")
    assert d["passed"] is False and d["baseline_version"] == str(stronger.version)
    assert d["checks"][0]["baseline"] == pytest.approx(auc + 0.05)


def test_pinned_version_is_fetched_by_digest_and_gets_this_envs_gates(chain, tmp_path):
    repo = make_repo(tmp_path / "repo")
    staging = register(chain, repo, tmp_path, env="staging", spec_digest="b" * 64)
    pin = {"version": int(staging["mlflow_version"]), "digest": f"sha256:{staging['sha256']}"}
    fetched = tmp_path / "fetched"
    run_step("fetch", {"registry": "churn-classifier", "tracking": {"uri": None}, **pin}, inputs={},
             output_dir=str(fetched), repo_root=str(repo))
    assert (fetched / "model.joblib").is_file()
    prod = register(chain, repo, tmp_path, env="prod", spec_digest="c" * 64, model_dir=fetched, pin=pin)
    assert prod["mlflow_version"] == staging["mlflow_version"]
    c = client_of(repo)
    assert len(c.search_model_versions("name='churn-classifier'")) == 1  # nothing new registered
    mv = c.get_model_version("churn-classifier", staging["mlflow_version"])
    assert set(tracking.gate_records(mv)) == {"prod", "staging"}
    assert c.get_registered_model("churn-classifier").aliases["prod"] == int(staging["mlflow_version"])
    with pytest.raises(StepError, match=r"has digest sha256:.*not the pinned sha256:0000"):
        run_step("fetch", {"registry": "churn-classifier", "tracking": {"uri": None}, "version": pin["version"],
                           "digest": "sha256:" + "0" * 64}, inputs={}, output_dir=str(tmp_path / "f2"),
                 repo_root=str(repo))


def test_unreachable_registry_is_retried_then_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(tracking.RegistryError) as e:
        tracking.connect(f"http://127.0.0.1:{port}", tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"MLflow registry at http://127.0.0.1:{port} cannot be reached (")
    assert msg.endswith("tried 2 times)") and "\n" not in msg


def test_embedded_store_copies_the_cached_empty_store(tmp_path, monkeypatch):
    """A new repo's store is a copy of the empty store MLflow built once (its ~60 schema
    migrations take ~15 s); the copy is a working store."""
    tracking.connect(None, tmp_path / "a")  # builds the template in the user cache if missing
    import mlflow

    cache = Path(tracking.os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "specops"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "specops").mkdir(parents=True)
    shutil.copyfile(template, tmp_path / "cache" / "specops" / template.name)
    c = tracking.connect(None, tmp_path / "b")
    db_b = tmp_path / "b" / ".specops" / "mlflow" / "mlflow.db"
    assert db_b.read_bytes() == template.read_bytes()
    tracking.ensure_registered_model(c, "m", "m")
    assert tracking.registered_aliases(c, "m") == {}
