"""Lowering of prompt gates: each gets an `evaluate` step (task prompt) whose params carry the
rendered-per-row prompt, assertions, endpoint/judge and significance settings, and a gate step
that also checks `regression_p_value >= alpha`."""

from __future__ import annotations

import shutil
from pathlib import Path

from specops.checks import analyze
from specops.ir.lower import lower_env

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "support-assistant"

GATE = """apiVersion: specops.dev/v1alpha1
kind: EvalGate
metadata: {name: triage-served}
spec:
  prompt: ticket-triage
  dataset: triage-set
  endpoint:
    url: http://support-llm.serving:8000/v1
    model: support-llm
    apiKey: {secretRef: {provider: env, name: SERVING_TOKEN}}
    concurrency: 8
  judge:
    endpoint: {url: "http://judge:8000/v1", model: judge}
  assertions:
    - {type: equals, value: "{{ category }}"}
    - {type: llm-rubric, value: names one category, metric: on_topic}
  repeat: 3
  rowPassFraction: 0.67
  alpha: 0.01
  metrics:
    - {metric: pass_rate, threshold: ">= 0.9"}
    - {metric: on_topic, threshold: ">= baseline - 0.05"}
  blocks: [prod]
---
apiVersion: specops.dev/v1alpha1
kind: Dataset
metadata: {name: triage-set}
spec:
  source: {uri: file://data/triage.jsonl, format: jsonl, version: v1}
  columns:
    - {name: ticket_body, type: string}
    - {name: category, type: string}
  splits: {test: 1.0}
"""


def test_prompt_only_gate_over_an_endpoint(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    (repo / "gates" / "triage.yaml").write_text(GATE)
    (repo / "data" / "triage.jsonl").write_text('{"ticket_body": "x", "category": "billing"}\n')
    resolved = analyze(repo)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    [pipe], _ = lower_env(resolved, "dev")
    steps = {s.name: s for s in pipe.steps}
    # The gate names no model: it runs in the pipeline of its prompt's model, on its own data.
    assert pipe.model == "support-llm"
    assert steps["check-triage-set"].kind == "data_check"
    ev = steps["eval-triage-served"]
    assert ev.kind == "evaluate" and ev.inputs == {"data": "check-triage-set"}  # no model: it is served
    p = ev.params
    assert p["task"] == "prompt" and p["prompt"]["name"] == "ticket-triage" and "template" in p["prompt"]
    assert p["prompt"]["defaults"] == {"categories": ["billing", "mobile-app", "router"]}
    assert p["endpoint"] == {"url": "http://support-llm.serving:8000/v1", "model": "support-llm",
                             "api_key_env": "SERVING_TOKEN", "concurrency": 8, "timeout_s": 60.0}
    assert p["judge"]["endpoint"]["url"] == "http://judge:8000/v1"
    assert [a["type"] for a in p["assertions"]] == ["equals", "llm-rubric"]
    assert (p["repeat"], p["row_pass_fraction"], p["alpha"], p["baseline_rows"]) == (3, 0.67, 0.01, None)
    gate = steps["gate-triage-served"]
    assert gate.inputs == {"metrics": "eval-triage-served"}
    assert [(m["metric"], m["op"], m["value"]) for m in gate.params["metrics"]] == [
        ("pass_rate", ">=", 0.9), ("on_topic", ">=", None), ("regression_p_value", ">=", 0.01)]
    # The register step waits for it like for any gate.
    assert "gate-triage-served" in steps["register"].inputs.values()


def test_model_gate_is_unchanged_by_prompt_gates() -> None:
    resolved = analyze(EXAMPLE)
    [pipe], _ = lower_env(resolved, "prod")
    steps = {s.name: s for s in pipe.steps}
    assert steps["evaluate"].params["metrics"] == ["exact_match", "rougeL"]  # support-no-regression's
    assert steps["gate-support-no-regression"].inputs == {"metrics": "evaluate"}
    assert steps["eval-support-quality"].inputs == {"data": "check-support-tickets", "model": "finetune"}
