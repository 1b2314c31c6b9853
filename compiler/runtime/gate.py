"""Step `gate`: compare evaluation metrics with thresholds; stop the pipeline when one fails.

Params::

    {"gate": "churn-auc",                         # required: the EvalGate name (for messages)
     "metrics": [                                  # required, non-empty; see thresholds.py
        {"metric": "auc", "op": ">=", "value": 0.7, "baseline_delta": null,
         "baseline_factor": null, "raw": ">= 0.7"},
        {"metric": "f1", "op": ">=", "value": null, "baseline_delta": -0.01,
         "baseline_factor": null, "raw": ">= baseline - 0.01"}],
                                                   # (`{"metric": m, "raw": text}` alone is
                                                   #  parsed with parse_threshold)
     "baseline": {"auc": 0.81, "f1": 0.7} | null,  # the live model's metrics in the target env
     "on_missing_baseline": "fail",                # pass | fail (default fail): what a relative
                                                   #   check does when the baseline lacks its metric
     "baseline_from": {"registry": "churn-classifier", "env": "prod", "tracking": {"uri": null}} | null}
                                                   # without `baseline`: the metrics recorded on the
                                                   #   version that env serves now (its alias, in MLflow)

Inputs: `metrics` (an evaluate output holding metrics.json; a prompt evaluation also holds
rows.json, whose failing and regressed rows the failure message names). A metric the
evaluation did not produce fails its check. Output: `decision.json` ({gate, passed, checks: [{metric, threshold,
observed, baseline, bound, passed, message}]}), written before a failure is raised. Raises
StepFailed listing every failed check, e.g.
`gate 'churn-auc' failed: auc = 0.7812 < 0.95 (threshold '>= 0.95')`.
Returns {gate, passed, checks: n}.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from specops.runtime import tracking, write_json
from specops.runtime.common import Params, fmt_num, require_input
from specops.runtime.errors import ParamError, StepFailed
from specops.runtime.thresholds import NEGATED, Threshold

KEYS = ("gate", "metrics", "baseline", "on_missing_baseline", "baseline_from")
ROWS_NAMED = 10  # failing rows named in the one-line failure message (all are in decision.json)


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "gate", KEYS)
    gate = p.str("gate")
    checks = p.list("metrics")
    if not checks:
        raise p.error("metrics", "must hold at least one check")
    thresholds = []
    for i, c in enumerate(checks):
        if not isinstance(c, dict):
            raise ParamError(f"gate {gate!r}: metrics[{i}] must be a mapping")
        try:
            thresholds.append(Threshold.from_params(c))
        except ValueError as e:
            raise ParamError(f"gate {gate!r}: metrics[{i}]: {e}") from None
    baseline = p.dict("baseline", {})
    served: dict[str, Any] = {}
    if not baseline and any(t.relative for t in thresholds):
        # Relative thresholds compare with what the environment serves now.
        served = tracking.served_baseline(p.dict("baseline_from", None), gate, repo_root)
        baseline = dict(served.get("metrics") or {})
    for k, v in baseline.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise p.error("baseline", f"value for {k!r} must be a finite number, got {v!r}")
    on_missing = p.str("on_missing_baseline", "fail", choices=("pass", "fail"))

    metrics_path = require_input(inputs, "metrics", "gate") / "metrics.json"
    if not metrics_path.is_file():
        raise ParamError(f"gate {gate!r}: input 'metrics' has no metrics.json (expected an evaluate output)")
    observed_all = json.loads(metrics_path.read_text(encoding="utf-8"))

    results = [_check(t, observed_all, baseline, on_missing) for t in thresholds]
    passed = all(r["passed"] for r in results)
    rows = _rows(metrics_path.parent / "rows.json")
    decision: dict[str, Any] = {"gate": gate, "passed": passed, "checks": results}
    if served:
        decision["baseline_version"] = served.get("version")
    if rows is not None:
        decision["failed_rows"] = [r["id"] for r in rows["rows"] if not r.get("passed")]
        decision["significance"] = rows.get("significance")
        # Recorded with the registered version: the next gate's significance baseline.
        decision["row_outcomes"] = {str(r["id"]): bool(r.get("passed")) for r in rows["rows"]}
    write_json(out / "decision.json", decision)
    if not passed:
        raise StepFailed(f"gate {gate!r} failed: " + "; ".join(r["message"] for r in results if not r["passed"])
                         + (_row_lines(rows) if rows is not None else ""))
    return {"gate": gate, "passed": True, "checks": len(results)}


def _rows(path: Path) -> dict[str, Any] | None:
    """A prompt evaluation's rows.json (see prompt_eval.py), or None for other evaluations."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ParamError(f"{path}: not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ParamError(f"{path}: expected {{rows: [...]}} from a prompt evaluation")
    return doc


def _row_names(rows: list[dict[str, Any]], limit: int = ROWS_NAMED) -> str:
    names = [f"#{r['index']} ({r['id']})" for r in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(names) + more


def _row_lines(doc: dict[str, Any]) -> str:
    """The failing rows (split index and id) and the rows that regressed against the baseline."""
    rows = doc["rows"]
    failed = [r for r in rows if not r.get("passed")]
    text = f"; failing rows ({len(failed)} of {len(rows)}): {_row_names(failed)}" if failed else ""
    sig = doc.get("significance") or {}
    regressed = set(sig.get("regressed") or [])
    if regressed:
        text += (f"; regressed against the baseline ({sig.get('test')}, p = {fmt_num(sig.get('p_value', 1.0))}): "
                 f"{_row_names([r for r in rows if r['id'] in regressed])}")
    return text


def _check(t: Threshold, observed_all: dict[str, Any], baseline: dict[str, float], on_missing: str) -> dict:
    res: dict[str, Any] = {"metric": t.metric, "threshold": t.raw, "observed": None,
                           "baseline": None, "bound": None}
    thr = f"threshold {t.raw!r}"
    value = observed_all.get(t.metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        have = ", ".join(sorted(observed_all)) or "none"
        return {**res, "passed": False, "message": f"{t.metric}: not in the evaluated metrics (have: {have})"}
    res["observed"] = value
    base = None
    if t.relative:
        base = baseline.get(t.metric)
        if base is None:
            if on_missing == "pass":
                return {**res, "passed": True,
                        "message": f"{t.metric} = {fmt_num(value)}: no baseline, passed (on_missing_baseline: pass)"}
            return {**res, "passed": False, "message": f"{t.metric}: no baseline value for {thr}"}
        res["baseline"] = base
    bound = t.bound(base)
    res["bound"] = round(bound, 12)
    ok = t.check(value, base)
    rel = t.op if ok else NEGATED[t.op]
    context = thr if base is None else f"baseline {fmt_num(base)}, {thr}"
    return {**res, "passed": ok, "message": f"{t.metric} = {fmt_num(value)} {rel} {fmt_num(bound)} ({context})"}
