"""promptfoo, side by side: the same rows, the same prompts, the same OpenAI-compatible server
(the session's vLLM, greedy decoding) and the same assertions give the same verdicts, row by row.

promptfoo is the real npm package (tests/tools/promptfoo, installed by .ci/run with `npm ci`),
run as its CLI (`promptfoo eval`) with the openai completion provider pointed at vLLM.
`similar` (promptfoo asks an embedding provider), `llm-rubric` (no capable judge runs here)
and `latency` (a wall time) are compared elsewhere (test_assertions.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from specops.runtime import run_step
from tests.fixtures.qa_model import write_qa_jsonl

PEER = Path(__file__).resolve().parents[2] / "tools" / "promptfoo"
BIN = PEER / "node_modules" / ".bin" / "promptfoo"
PROMPTS = {"good": "Question: {{ question }}\nAnswer:", "broken": "Q: {{ question }}\nA:"}
ASSERTIONS = [
    {"type": "icontains", "value": "{{ answer }}"},
    {"type": "contains", "value": "{{ topic }}"},
    {"type": "equals", "value": " {{ answer }}"},
    {"type": "starts-with", "value": " Yes"},
    {"type": "regex", "value": r"\b(plan|account)\b"},
    {"type": "is-json"},
    {"type": "not-contains", "value": "refund"},
    {"type": "not-icontains", "value": "help"},
    {"type": "rouge-n", "value": "{{ answer }}", "threshold": 0.5},
    {"type": "bleu", "value": "{{ answer }}", "threshold": 0.3},
    {"type": "levenshtein", "value": "{{ answer }}", "threshold": 10},
]


@pytest.fixture(scope="module")
def promptfoo() -> Path:
    if not BIN.exists():
        if os.environ.get("CI"):
            pytest.fail(f"promptfoo is not installed under {PEER} (.ci/run runs `npm ci` there)")
        pytest.skip(f"promptfoo is not installed: `npm ci --prefix {PEER}`")
    return BIN


def run_promptfoo(bin_: Path, work: Path, base_url: str, model: str, rows: list[dict]) -> list[dict]:
    config = {
        "description": "specops side-by-side",
        "prompts": [{"id": k, "label": k, "raw": v} for k, v in PROMPTS.items()],
        "providers": [{"id": f"openai:completion:{model}",
                       "config": {"apiBaseUrl": f"{base_url}/v1", "apiKey": "unused", "temperature": 0,
                                  "max_tokens": 24}}],
        "defaultTest": {"assert": [{k: v for k, v in a.items()} for a in ASSERTIONS]},
        "tests": [{"vars": r} for r in rows],
    }
    (work / "promptfooconfig.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "HOME": str(work / "home"), "PROMPTFOO_CONFIG_DIR": str(work / "pf"),
           "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_DISABLE_SHARING": "1",
           "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true", "OPENAI_API_KEY": "unused", "NO_COLOR": "1"}
    p = subprocess.run([str(bin_), "eval", "-c", "promptfooconfig.yaml", "-o", "out.json", "--no-cache",
                        "--no-progress-bar", "--no-table", "-j", "4"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode in (0, 100), p.stdout[-3000:] + p.stderr[-3000:]  # 100: some tests failed
    return json.loads((work / "out.json").read_text())["results"]["results"]


@pytest.mark.slow
@pytest.mark.vllm_e2e
def test_promptfoo_and_specops_agree_row_by_row(promptfoo, vllm_server, tmp_path) -> None:
    repo = tmp_path / "repo"
    write_qa_jsonl(repo / "data" / "qa.jsonl")
    rows = [json.loads(line) for line in (repo / "data" / "qa.jsonl").read_text().splitlines()]
    ds = {"name": "qa", "uri": "file://data/qa.jsonl", "format": "jsonl",
          "schema": [{"name": c, "type": "string", "nullable": False} for c in ("question", "answer", "topic")],
          "splits": {"test": 1.0}, "checks": []}
    run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(tmp_path / "data"), repo_root=str(repo))
    ours: dict[tuple[str, str], dict] = {}
    for name, template in PROMPTS.items():
        params = {"task": "prompt", "gate": "peer", "assertions": ASSERTIONS,
                  "prompt": {"name": "qa", "version": 1, "template": template,
                             "parameters": {"temperature": 0, "max_tokens": 24}},
                  "endpoint": {"url": f"{vllm_server.base_url}/v1", "model": vllm_server.model, "concurrency": 4}}
        run_step("evaluate", params, inputs={"data": str(tmp_path / "data")}, output_dir=str(tmp_path / name),
                 repo_root=str(repo))
        for r in json.loads((tmp_path / name / "rows.json").read_text())["rows"]:
            ours[(name, rows[r["index"] - 1]["question"])] = r["runs"][0]

    work = tmp_path / "pf"
    work.mkdir()
    theirs = run_promptfoo(promptfoo, work, vllm_server.base_url, vllm_server.model, rows)
    assert len(theirs) == 2 * len(rows)
    compared = disagreements = 0
    verdicts = set()
    for res in theirs:
        prompt = res["prompt"]["label"]
        mine = ours[(prompt, res["vars"]["question"])]
        assert res["response"]["output"] == mine["output"], (prompt, res["vars"]["question"])
        components = res["gradingResult"]["componentResults"]
        assert len(components) == len(ASSERTIONS)
        for a, theirs_c, mine_a in zip(ASSERTIONS, components, mine["assertions"]):
            assert theirs_c["assertion"]["type"] == a["type"]
            compared += 1
            verdicts.add((a["type"], theirs_c["pass"]))
            if theirs_c["pass"] != mine_a["passed"]:
                disagreements += 1
                print("disagree:", prompt, a["type"], repr(mine["output"]), theirs_c.get("reason"), mine_a["reason"])
    assert disagreements == 0
    assert compared == 2 * len(rows) * len(ASSERTIONS)
    # The comparison means something: most assertion types both pass and fail somewhere.
    mixed = {t for t, _ in verdicts if (t, True) in verdicts and (t, False) in verdicts}
    assert len(mixed) >= 5, sorted(verdicts)
