"""Step `evaluate` with task `prompt`: render a Prompt per row, generate, assert, aggregate.

Params::

    {"task": "prompt",
     "gate": "support-quality",              # the EvalGate (for messages)
     "split": "test", "max_rows": null,
     "prompt": {"name": "support-reply", "version": 4,
                "template": "..." | "messages": [{"role": "user", "content": "..."}],
                "defaults": {"product": "router"},      # declared variables' defaults
                "parameters": {"temperature": 0.2, "top_p": 0.9, "max_tokens": 512, "stop": []}},
     "assertions": [{"type": "icontains", "value": "{{ product }}", "threshold": null,
                     "weight": 1.0, "metric": null}, ...],      # see assertions.py
     "endpoint": {...} | null,                # generate over HTTP (generate.py); else in-process
     "judge": {"endpoint": {...}} | {"model_path": "..."} | null,   # for llm-rubric
     "repeat": 1,                             # generations per row
     "row_pass_fraction": 0.5,                # a row passes when >= this fraction of its runs pass
     "alpha": 0.05,                           # significance level against the baseline
     "baseline_rows": {"<row id>": true, ...} | null,   # the baseline's stored row outcomes
     "baseline_from": {"registry", "env", "tracking"} | null,  # else: the rows recorded on the
                                                   # version that env serves now (MLflow)
     "seed": 0,
     "base_model": null, "revision": null, "adapter": null}   # a published model (evaluate.py)

Inputs: `data` (a data_check output) and, without an endpoint, `model` (a finetune output) or,
for a model served as published, its local `base_model` folder.

A run passes when every assertion passes (promptfoo's test semantics); a row's pass fraction
is the share of its `repeat` runs that passed. Row ids are content hashes of the row's values,
so outcomes pair across runs even when the split is reordered.

Output: `metrics.json` — `pass_rate` (share of rows that pass), per named assertion metric
the mean score over all runs, `latency_p50_ms`/`latency_p95_ms` of the generations, and
`regression_p_value` (1.0 without a baseline); `rows.json` — every row's id, index, verdict,
pass fraction and runs (output, latency, each assertion's verdict), plus the significance
test. Returns {"metrics", "rows", "split", "failed_rows", "row_outcomes": {row id: passed}}.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from specops.runtime import tracking, write_json
from specops.runtime.assertions import Context, check, validate
from specops.runtime.common import Params, require_input
from specops.runtime.errors import ParamError, StepError
from specops.runtime.generate import HttpGenerator, Request, embedder, judge_of, local_generator, model_dir_of
from specops.runtime.render import render_rows_iter
from specops.runtime.significance import Significance, paired_regression
from specops.runtime.tables import load_split

DIGITS = 6
KEYS = ("task", "gate", "split", "max_rows", "prompt", "assertions", "endpoint", "judge", "repeat",
        "row_pass_fraction", "alpha", "baseline_rows", "baseline_from", "seed", "base_model", "revision", "adapter")
PROMPT_KEYS = ("name", "version", "template", "messages", "defaults", "parameters")
GEN_KEYS = ("temperature", "top_p", "max_tokens", "stop")


def row_ids(rows: list[dict[str, Any]]) -> list[str]:
    """Stable ids: the first 12 hex digits of the sha256 of the row's JSON (sorted keys);
    the n-th duplicate gets `~n`."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        h = hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()[:12]
        n = seen.get(h, 0)
        seen[h] = n + 1
        out.append(h if n == 0 else f"{h}~{n}")
    return out


def _sources(prompt: dict[str, Any], assertions: list[dict[str, Any]]) -> dict[str, str]:
    """Every template to render per row: the prompt's text(s) and string assertion values."""
    src: dict[str, str] = {}
    if prompt.get("template") is not None:
        src["prompt"] = prompt["template"]
    else:
        for i, m in enumerate(prompt["messages"]):
            src[f"message.{i}"] = m["content"]
    for i, a in enumerate(assertions):
        v = a.get("value")
        if isinstance(v, str):
            src[f"assert.{i}"] = v
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            for j, x in enumerate(v):
                src[f"assert.{i}.{j}"] = x
    return src


def _prompt_of(prompt: dict[str, Any], rendered: dict[str, str]) -> str | list[dict[str, str]]:
    if prompt.get("template") is not None:
        return rendered["prompt"]
    return [{"role": m["role"], "content": rendered[f"message.{i}"]} for i, m in enumerate(prompt["messages"])]


def _assertion_for_row(a: dict[str, Any], i: int, rendered: dict[str, str]) -> dict[str, Any]:
    v = a.get("value")
    if isinstance(v, str):
        v = rendered[f"assert.{i}"]
    elif isinstance(v, list) and all(isinstance(x, str) for x in v):
        v = [rendered[f"assert.{i}.{j}"] for j in range(len(v))]
    return {**a, "value": v}


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "evaluate", KEYS)
    gate = p.str("gate")
    where = f"evaluate (gate {gate!r})"
    split = p.str("split", "test")
    max_rows = p.int("max_rows", None, minimum=1)
    prompt = Params(p.dict("prompt"), f"{where}: prompt", PROMPT_KEYS).p
    if (prompt.get("template") is None) == (prompt.get("messages") is None):
        raise ParamError(f"{where}: prompt needs exactly one of template, messages")
    gen_params = Params(prompt.get("parameters") or {}, f"{where}: prompt.parameters", GEN_KEYS).p
    assertions = p.list("assertions")
    if not assertions:
        raise p.error("assertions", "must hold at least one assertion")
    for i, a in enumerate(assertions):
        if not isinstance(a, dict):
            raise ParamError(f"{where}: assertions[{i}] must be a mapping")
        validate(a, f"{where}: assertions[{i}]")
    repeat = p.int("repeat", 1, minimum=1)
    fraction = p.float("row_pass_fraction", 0.5, minimum=0.0)
    alpha = p.float("alpha", 0.05, minimum=0.0)
    seed = p.int("seed", 0, minimum=0)
    baseline = p.dict("baseline_rows", None)
    if baseline is None and p.raw("baseline_from", None) is not None:
        baseline = tracking.served_baseline(p.dict("baseline_from"), gate, repo_root).get("rows")
    if baseline is not None and not all(isinstance(v, bool) for v in baseline.values()):
        raise p.error("baseline_rows", "must map row ids to true/false")

    _, rows, _ = load_split(require_input(inputs, "data", "evaluate"), split, "evaluate")
    rows = rows[:max_rows] if max_rows else rows
    if not rows:
        raise StepError(f"{where}: split {split!r} is empty")
    ids = row_ids(rows)
    defaults = prompt.get("defaults") or {}
    endpoint = p.raw("endpoint", None)
    generator: Any = (HttpGenerator(endpoint, where) if endpoint is not None
                      else local_generator(model_dir_of(p, inputs, repo_root), repo_root))
    ctx = Context(embed=embedder() if any(str(a["type"]).endswith("similar") for a in assertions) else None,
                  judge=judge_of(p.raw("judge", None), repo_root, where))
    if any(str(a["type"]).endswith("llm-rubric") for a in assertions) and ctx.judge is None:
        raise ParamError(f"{where}: llm-rubric needs a judge")

    # Rows go to the model as the render worker produces them; outputs are judged in row order
    # while later requests are still in flight.
    rendered: list[dict[str, Any]] = []
    pending: list[tuple[int, Any]] = []
    runs: dict[int, list[dict[str, Any]]] = {}
    pool = generator.executor()
    try:
        for i, rr in enumerate(render_rows_iter(_sources(prompt, assertions), [{**defaults, **r} for r in rows])):
            rendered.append(rr)
            if "ok" in rr:
                text = _prompt_of(prompt, rr["ok"])
                for r in range(repeat):
                    seed_i = (seed * 1_000_003 + int(ids[i][:8], 16) + r) % 2 ** 31
                    pending.append((i, pool.submit(generator, Request(text, gen_params, seed_i))))
        for i, fut in pending:
            ans = fut.result()
            verdicts = [check(_assertion_for_row(a, k, rendered[i]["ok"]), ans.text, ans.latency_ms, ctx)
                        for k, a in enumerate(assertions)]
            runs.setdefault(i, []).append({
                "output": ans.text, "latency_ms": round(ans.latency_ms, 3), "passed": all(v.passed for v in verdicts),
                "assertions": [{"type": a["type"], "passed": v.passed, "score": round(v.score, DIGITS),
                                "reason": v.reason} for a, v in zip(assertions, verdicts)]})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failure stops the requests not yet sent
    return _summarise(out, gate, split, rows, ids, rendered, runs, assertions, fraction, alpha, baseline)


def _summarise(out: Path, gate: str, split: str, rows: list[dict], ids: list[str], rendered: list[dict],
               runs: dict[int, list[dict]], assertions: list[dict], fraction: float, alpha: float,
               baseline: dict[str, bool] | None) -> dict:
    table = []
    for i, rid in enumerate(ids):
        rr = runs.get(i, [])
        share = sum(r["passed"] for r in rr) / len(rr) if rr else 0.0
        entry: dict[str, Any] = {"id": rid, "index": i + 1, "passed": bool(rr) and share >= fraction,
                                 "pass_fraction": round(share, DIGITS), "runs": rr}
        if "error" in rendered[i]:
            entry["error"] = f"prompt rendering failed: {rendered[i]['error']}"
        table.append(entry)
    outcomes = {r["id"]: r["passed"] for r in table}
    sig = paired_regression(outcomes, baseline, alpha) if baseline else Significance("none", 1.0, False)
    metrics: dict[str, float] = {"pass_rate": sum(outcomes.values()) / len(outcomes),
                                 "regression_p_value": sig.p_value}
    named: dict[str, list[float]] = {}
    for r in table:
        for run in r["runs"]:
            for a, v in zip(assertions, run["assertions"]):
                if a.get("metric"):
                    named.setdefault(a["metric"], []).append(v["score"])
    for name, scores in named.items():
        metrics[name] = sum(scores) / len(scores)
    lat = sorted(run["latency_ms"] for r in table for run in r["runs"])
    if lat:
        metrics["latency_p50_ms"] = _percentile(lat, 50)
        metrics["latency_p95_ms"] = _percentile(lat, 95)
    metrics = {k: round(float(v), DIGITS) for k, v in sorted(metrics.items())}
    write_json(out / "metrics.json", metrics)
    write_json(out / "rows.json", {"gate": gate, "split": split, "rows": table, "significance": sig.to_json()})
    failed = [r["id"] for r in table if not r["passed"]]
    # Row outcomes travel with the result: stored with the gate's verdict, they are the next
    # run's baseline for the significance test.
    return {"metrics": metrics, "rows": len(table), "split": split, "failed_rows": failed,
            "row_outcomes": outcomes}


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)
