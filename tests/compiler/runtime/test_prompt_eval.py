"""Prompt gates in the step runtime: render the prompt per row, generate (in-process, or over
HTTP from the session's vLLM server), judge each output with assertions, gate on the pass
rate, and test a drop against the baseline's stored row outcomes.

The model is tests/fixtures/qa_model.py's tiny Llama trained on 16 answers: the prompt it was
trained with answers them, a differently worded ("broken") prompt does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specops.runtime import StepFailed, run_step
from specops.runtime.prompt_eval import _summarise, row_ids
from tests.fixtures.qa_model import write_qa_jsonl

GOOD = "Question: {{ question }}\nAnswer:"
BROKEN = "Q: {{ question }}\nA:"
ASSERTIONS = [{"type": "icontains", "value": "{{ answer }}"},
              {"type": "rouge-n", "value": "{{ answer }}", "threshold": 0.5, "metric": "rouge1"}]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    repo = tmp_path_factory.mktemp("qa-repo")
    write_qa_jsonl(repo / "data" / "qa.jsonl")
    ds = {"name": "qa", "uri": "file://data/qa.jsonl", "format": "jsonl",
          "schema": [{"name": c, "type": "string", "nullable": False} for c in ("question", "answer", "topic")],
          "splits": {"test": 1.0}, "checks": []}
    run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(repo / "out" / "data"), repo_root=str(repo))
    return repo, repo / "out" / "data"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def params(template: str, **extra) -> dict:
    return {"task": "prompt", "gate": "qa", "prompt": {"name": "qa", "version": 1, "template": template,
                                                       "parameters": {"temperature": 0, "max_tokens": 24}},
            "assertions": ASSERTIONS, **extra}


def evaluate(data, out: Path, p: dict, model: Path | None) -> dict:
    repo, data_dir = data
    inputs = {"data": str(data_dir)} | ({"model": str(model)} if model else {})
    return run_step("evaluate", p, inputs=inputs, output_dir=str(out), repo_root=str(repo))


def gate(metrics_dir: Path, out: Path, checks: list[dict]) -> dict:
    return run_step("gate", {"gate": "qa", "metrics": checks}, inputs={"metrics": str(metrics_dir)},
                    output_dir=str(out), repo_root=".")


@pytest.mark.slow
def test_prompt_gate_in_process(data, qa_model, tmp_path) -> None:
    good = evaluate(data, tmp_path / "good", params(GOOD), qa_model)
    assert good["rows"] == 16 and good["metrics"]["pass_rate"] == 1.0 and good["failed_rows"] == []
    assert good["metrics"]["rouge1"] > 0.9 and good["metrics"]["latency_p95_ms"] > 0
    rows = json.loads((tmp_path / "good" / "rows.json").read_text())["rows"]
    assert [r["index"] for r in rows] == list(range(1, 17)) and all(r["pass_fraction"] == 1.0 for r in rows)
    assert gate(tmp_path / "good", tmp_path / "g1", [{"metric": "pass_rate", "raw": ">= 0.9"}])["passed"]

    # The same rows with a deliberately broken prompt: the gate fails and names the rows.
    baseline = {r["id"]: r["passed"] for r in rows}
    broken = evaluate(data, tmp_path / "broken", params(BROKEN, baseline_rows=baseline), qa_model)
    assert broken["metrics"]["pass_rate"] < 0.7 and broken["failed_rows"]
    with pytest.raises(StepFailed) as e:
        gate(tmp_path / "broken", tmp_path / "g2", [{"metric": "pass_rate", "raw": ">= 0.9"},
                                                     {"metric": "regression_p_value", "raw": ">= 0.05"}])
    msg = str(e.value)
    n_failed = len(broken["failed_rows"])
    assert f"failing rows ({n_failed} of 16)" in msg and "regressed against the baseline (mcnemar-exact" in msg
    assert f"({broken['failed_rows'][0]})" in msg
    decision = json.loads((tmp_path / "g2" / "decision.json").read_text())
    assert decision["failed_rows"] == broken["failed_rows"]
    assert decision["significance"]["significant"] and broken["metrics"]["regression_p_value"] < 0.05


def test_repeat_tames_a_flaky_row(tmp_path) -> None:
    """Under repeat: 3, a row that fails one of its three runs still passes (2/3 >= 0.5), and
    a single row that does regress is not a significant drop."""
    rows = [{"q": str(i)} for i in range(40)]
    ids = row_ids(rows)
    ok = {"passed": True, "output": "", "latency_ms": 1.0, "assertions": []}
    bad = {**ok, "passed": False}
    runs = {i: [ok, ok, ok] for i in range(40)}
    runs[5] = [ok, bad, ok]  # flaky
    rendered = [{"ok": {}} for _ in rows]
    res = _summarise(tmp_path, "qa", "test", rows, ids, rendered, runs, [], 0.5, 0.05, {i: True for i in ids})
    assert res["metrics"]["pass_rate"] == 1.0 and res["metrics"]["regression_p_value"] == 1.0
    runs[7] = [bad, bad, ok]  # 1/3 < 0.5: this row fails
    res = _summarise(tmp_path, "qa", "test", rows, ids, rendered, runs, [], 0.5, 0.05, {i: True for i in ids})
    assert res["failed_rows"] == [ids[7]] and res["metrics"]["regression_p_value"] == 0.5


def test_row_ids_are_content_hashes() -> None:
    a, b = {"q": "x", "n": 1}, {"n": 1, "q": "x"}
    assert row_ids([a, b, {"q": "y"}])[:2] == [row_ids([a])[0], row_ids([a])[0] + "~1"]
    assert row_ids([{"q": "y"}, a])[1] == row_ids([a])[0]  # reordering keeps ids


@pytest.mark.slow
def test_rendering_errors_fail_their_rows(data, qa_model, tmp_path) -> None:
    res = evaluate(data, tmp_path / "e", params("{{ question }} {{ nope }}", max_rows=2), qa_model)
    rows = json.loads((tmp_path / "e" / "rows.json").read_text())["rows"]
    assert res["metrics"]["pass_rate"] == 0.0 and all("undefined variable" in r["error"] for r in rows)


@pytest.mark.slow
@pytest.mark.vllm_e2e
def test_prompt_gate_over_http_against_vllm(data, vllm_server, tmp_path) -> None:
    endpoint = {"url": f"{vllm_server.base_url}/v1", "model": vllm_server.model, "concurrency": 4}
    good = evaluate(data, tmp_path / "good", params(GOOD, endpoint=endpoint), None)
    assert good["metrics"]["pass_rate"] == 1.0, good
    chat = evaluate(data, tmp_path / "chat", {**params(GOOD, endpoint=endpoint), "prompt": {
        "name": "qa", "version": 1, "messages": [{"role": "user", "content": "{{ question }}"}],
        "parameters": {"temperature": 0, "max_tokens": 24}}}, None)
    assert chat["metrics"]["pass_rate"] == 1.0, chat
    broken = evaluate(data, tmp_path / "broken", params(BROKEN, endpoint=endpoint, repeat=2), None)
    assert broken["metrics"]["pass_rate"] < 0.7
    rows = json.loads((tmp_path / "broken" / "rows.json").read_text())["rows"]
    assert all(len(r["runs"]) == 2 for r in rows)


@pytest.mark.slow
@pytest.mark.vllm_e2e
def test_llm_rubric_asks_the_judge_endpoint(data, vllm_server, tmp_path) -> None:
    """The wiring of llm-rubric: every output goes to the judge (here the same tiny server,
    which is no capable judge) with promptfoo's grading prompt, and its answer is parsed:
    an answer without a JSON verdict fails the row, quoting the answer."""
    endpoint = {"url": f"{vllm_server.base_url}/v1", "model": vllm_server.model, "concurrency": 2}
    p = {**params(GOOD, endpoint=endpoint, judge={"endpoint": endpoint}, max_rows=2),
         "assertions": [{"type": "llm-rubric", "value": "answers the question", "metric": "rubric"}]}
    res = evaluate(data, tmp_path / "judged", p, None)
    rows = json.loads((tmp_path / "judged" / "rows.json").read_text())["rows"]
    reasons = [r["runs"][0]["assertions"][0]["reason"] for r in rows]
    assert res["metrics"]["pass_rate"] == 0.0 and res["metrics"]["rubric"] == 0.0
    assert all(x.startswith("the judge's answer holds no JSON object: ") for x in reasons), reasons
