"""The churn example's dev pipeline runs end to end, for real: on ZenML's local stack through
`specops run`, and the same lifecycle compiled for KFP under kfp.local. A raised AUC threshold
makes its gate fail the run with a clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from specops.cli import main

ROOT = Path(__file__).resolve().parents[2]


def churn_copy(tmp_path: Path, threshold: str | None = None, kfp_env: bool = False) -> Path:
    repo = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    if threshold:
        gate = repo / "gates" / "auc.yaml"
        gate.write_text(gate.read_text().replace('">= 0.75"', f'"{threshold}"'))
    if kfp_env:
        # One more environment on a local KFP target: the same specs, compiled for KFP.
        p = repo / "specops.yaml"
        text = p.read_text()
        text = text.replace("  environments:\n", "  environments:\n    local-kfp:\n      target: local-kfp\n", 1)
        text = text.replace("  targets:\n", "  targets:\n    local-kfp: {backend: kfp, provider: local}\n", 1)
        p.write_text(text)
    return repo


@pytest.mark.slow
def test_churn_dev_pipeline_runs_on_zenml_and_registers(tmp_path: Path) -> None:
    repo = churn_copy(tmp_path)
    r = CliRunner().invoke(main, ["run", str(repo), "--env", "dev"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "gate-churn-auc               completed" in r.output
    assert "churn-classifier: run completed" in r.output
    versions = [p for p in (repo / ".specops/registry/churn-classifier").iterdir() if p.is_dir()]
    assert len(versions) == 1
    reg = json.loads((versions[0] / "registration.json").read_text())
    assert reg["metrics"]["auc"] >= 0.75  # the gate decided from the AUC it computed


@pytest.mark.slow
def test_raised_threshold_fails_the_gate_with_a_clear_message(tmp_path: Path) -> None:
    repo = churn_copy(tmp_path, threshold=">= 0.99")
    r = CliRunner().invoke(main, ["run", str(repo), "--env", "dev"], catch_exceptions=False)
    assert r.exit_code == 1
    assert "gate 'churn-auc' failed: auc = " in r.output and "< 0.99 (threshold '>= 0.99')" in r.output
    assert "register                     skipped" in r.output
    assert not (repo / ".specops/registry/churn-classifier").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning")
def test_churn_compiled_for_kfp_runs_under_kfp_local(tmp_path: Path, monkeypatch) -> None:
    import kfp.local
    from kfp import components

    from specops.backends import kfp as kfp_backend
    from specops.checks import analyze
    from specops.ir.lower import lower_env

    repo = churn_copy(tmp_path, kfp_env=True)
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    (pipeline,) = lower_env(resolved, "local-kfp")[0]
    assert kfp_backend.check(pipeline) == [] or not any(d.severity == "error" for d in kfp_backend.check(pipeline))
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(kfp_backend.emit(pipeline)["pipeline.yaml"])
    monkeypatch.chdir(tmp_path)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    components.load_component_from_file(str(path))(repo_root=str(repo))
    (run_dir,) = list((tmp_path / "root").iterdir())
    metrics = json.loads((run_dir / "evaluate/output/metrics.json").read_text())
    decision = json.loads((run_dir / "gate-churn-auc/output/decision.json").read_text())
    assert decision["passed"] is True and metrics["auc"] >= 0.75
    assert any(p.is_dir() for p in (repo / ".specops/registry/churn-classifier").iterdir())


@pytest.mark.slow
def test_abalone_apply_trains_xgboost_and_gates_on_mse(tmp_path: Path, monkeypatch) -> None:
    """SageMaker's abalone example as written: `apply` on the local target checks the headerless
    CSV, trains XGBoost with the notebook's hyperparameters and gates on `mse <= 6.0`."""
    repo = tmp_path / "abalone"
    shutil.copytree(ROOT / "examples" / "abalone", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path / "zenml"))
    monkeypatch.setenv("ZENML_ANALYTICS_OPT_IN", "false")
    r = CliRunner().invoke(main, ["apply", str(repo), "--env", "dev", "--auto-approve"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (version,) = [p for p in (repo / ".specops/registry/abalone-xgboost").iterdir() if p.is_dir()]
    reg = json.loads((version / "registration.json").read_text())
    assert reg["metrics"]["mse"] <= 6.0
    meta = json.loads((version / "model.json").read_text())
    assert (meta["library"], meta["estimator"]) == ("xgboost", "xgboost.XGBRegressor")
    # The notebook's names reached XGBoost under its wrapper's names.
    assert meta["hyperparameters"] == {"objective": "reg:linear", "n_estimators": 50, "max_depth": 5,
                                       "learning_rate": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7}
