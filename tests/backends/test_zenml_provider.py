"""The zenml_pipeline provider on ZenML's real local stack (SQLite store under the repo's
.specops/zenml): apply runs the pipeline, read finds it by its content-hash run tag, a
retried apply reuses the recorded run, a failed gate comes back with its verdict, and a
pipeline deleted from the store reads as gone (drift)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from specops.backends.provider import ProviderError, make_provider
from specops.backends.zenml_provider import ZenmlProvider
from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.ops.resources import desired_resources
from specops.state import ResourceState

REPO = Path(__file__).resolve().parents[2]


def churn(tmp_path: Path, gate: str | None = None):
    root = tmp_path / "churn"
    if not root.exists():
        shutil.copytree(REPO / "examples" / "churn", root, ignore=shutil.ignore_patterns("build", ".specops"))
    if gate is not None:
        g = root / "gates" / "auc.yaml"
        g.write_text(g.read_text().replace('">= 0.75"', repr(gate).replace("'", '"')))
    resolved = analyze(str(root))
    # dev also holds the model's registry aliases (registered_model.*); the pipeline is the one
    (d,) = [r for r in desired_resources(resolved, compile_repo(resolved, ["dev"]), "dev") if r.type == "zenml_pipeline"]
    p = make_provider(d.type, env="dev", target=d.target, root=root)
    return root, d, p


@pytest.mark.slow
def test_apply_read_idempotent_delete(tmp_path):
    root, d, p = churn(tmp_path)
    assert d.address == "zenml_pipeline.churn-classifier"
    assert p.read(d, None).exists is False  # no store yet: nothing live, no ZenML started
    ids, outputs = p.apply(d, None)
    assert ids["pipeline"] == "churn-classifier-dev" and ids["run_id"]
    assert outputs["status"] == "completed" and outputs["model_version"]
    gate = outputs["gates"]["churn-auc"]
    assert gate["passed"] is True and gate["version"] == outputs["model_version"] and gate["metrics"]["auc"] > 0.75
    live = make_provider(d.type, env="dev", target=d.target, root=root).read(d, None)
    assert live.exists and live.content_hash == d.content_hash and live.ids["run_id"] == ids["run_id"]
    # A retry after a crash (state not written) does not train again: the same run comes back.
    assert p.apply(d, None) == (ids, outputs)
    current = ResourceState(d.address, d.type, d.name, d.content_hash, ids, outputs, d.attributes, [])
    p.delete(current)
    assert make_provider(d.type, env="dev", target=d.target, root=root).read(None, current).exists is False


@pytest.mark.slow
def test_failed_gate_is_an_error_carrying_the_verdict(tmp_path):
    root, d, p = churn(tmp_path, gate=">= 0.99")
    with pytest.raises(ProviderError) as e:
        p.apply(d, None)
    assert "ZenML run of churn-classifier-dev failed: gate 'churn-auc' failed: auc = " in str(e.value)
    assert "(log: .specops/runs/dev/churn-classifier/run.log)" in str(e.value)
    verdict = e.value.outputs["gates"]["churn-auc"]
    assert verdict["passed"] is False and verdict["version"] is None and "auc" in verdict["metrics"]


def test_prompt_gate_verdicts_carry_their_own_metrics_and_row_outcomes() -> None:
    """A run's gate verdicts: a prompt gate's metrics come from its own evaluate step
    (eval-<gate>), with the row outcomes the next significance test pairs against; a model
    gate's from the shared evaluate step. (Step results as ZenML's run hands them back.)"""
    def step(name, result, status="completed"):
        return SimpleNamespace(name=name, status=status, result=result, error="" if status != "failed" else "no")

    steps = [step("evaluate", {"metrics": {"rougeL": 0.5}}),
             step("eval-quality", {"metrics": {"pass_rate": 0.9}, "row_outcomes": {"b": False, "a": True}}),
             step("gate-quality", {"gate": "quality", "passed": True}),
             step("gate-regression", {"gate": "regression", "passed": True}),
             step("register", {"version": "7"})]
    result = SimpleNamespace(steps={s.name: s for s in steps}, run_id="r1")
    got = ZenmlProvider._gates(SimpleNamespace(name="support-llm"), result)
    assert got["quality"]["metrics"] == {"pass_rate": 0.9} and got["quality"]["rows"] == {"a": True, "b": False}
    assert got["regression"]["metrics"] == {"rougeL": 0.5} and "rows" not in got["regression"]
    assert got["quality"]["version"] == "7"
