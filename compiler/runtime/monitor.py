"""Step `monitor`: run a Monitor's checks on its data windows and say whether it breached.

Params: the compiled `monitor.json` (specops.ir.monitors.monitor_params), plus optionally
`"current_uri"`: a file to read as the current window instead of the inputs Dataset's source
(what `specops monitor run --data FILE` passes), `"current_format"`, and `"fail_on_breach"`
(the scheduled job's: after writing the report, a breach raises StepFailed, so the
orchestrator marks the run failed).

Checks:
- drift: Evidently 0.7 (`Report`, `DataDefinition`, `DataDriftPreset` with its default test per
  column type and size, or the spec's method and threshold per column); a breach when the share
  of drifted columns reaches `drifted_share`. Writes `drift.html` and `drift.json` (Evidently's
  snapshot) next to `report.json`.
- quality: the eval gates' metrics (accuracy, precision, recall, f1, auc, rmse, mae) of the
  feedback window's predictions against its labels, each against its absolute threshold.
- llm: the eval gates' assertions on each sampled response; a breach when the share of rows
  passing all of them is under `min_pass_rate`.
SLOs are evaluated by Prometheus from the compiled alerting rules, not here.

Bad input (current columns that do not match the reference, an empty window, an unreadable
file) raises ParamError naming the monitor: an error, never a breach.

Output: `report.json` {monitor, env, breached, checks: [{name, passed, value, threshold,
message}], window: {rows, sha256, uri}} and the summary returned (the same without details).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from specops.runtime import run_step, write_json
from specops.runtime.assertions import Context, check
from specops.runtime.errors import ParamError, StepError, StepFailed
from specops.runtime.tables import load_split_table
from specops.runtime.thresholds import Threshold

NUMERIC_TYPES = ("int", "float")
QUALITY_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "rmse", "mae")


class _Window:
    def __init__(self, frame: Any, types: dict[str, str], result: dict[str, Any]):
        self.frame, self.types, self.result = frame, types, result


def _read(name: str, what: str, w: dict[str, Any], work: Path, repo_root: Path,
          uri: str | None = None, fmt: str | None = None) -> _Window:
    ds = dict(w["dataset"])
    if uri is not None:
        ds["uri"] = uri
        ds.pop("lock", None)
        if fmt is not None:
            ds["format"] = fmt
        elif "format" in ds and not uri.endswith(f".{ds['format']}"):
            ds.pop("format")  # read by the file's suffix
            ds.pop("csv", None)
    out = work / what
    try:
        result = run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(out), repo_root=str(repo_root))
        table, types = load_split_table(out, w["split"], what)
    except StepError as e:
        raise ParamError(f"monitor {name!r}: {what} window: {e}") from None
    frame = table.to_pandas()
    if len(frame) == 0:
        raise ParamError(f"monitor {name!r}: the {what} window is empty (0 rows in {ds.get('uri')}); "
                         "nothing to compare")
    return _Window(frame, types, result)


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    name = str(params.get("monitor") or "?")
    checks = params.get("checks") or {}
    results: list[dict[str, Any]] = []
    window: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="specops-monitor-") as tmp:
        work = Path(tmp)
        if "drift" in checks:
            cur = _read(name, "current", params["current"], work, repo_root,
                        params.get("current_uri"), params.get("current_format"))
            ref = _read(name, "reference", params["reference"], work, repo_root)
            window = {"rows": len(cur.frame), "sha256": cur.result.get("sha256"),
                      "uri": params.get("current_uri") or params["current"]["dataset"].get("uri")}
            results.extend(drift(name, cur, ref, params.get("columns") or [], checks["drift"], out))
        if "quality" in checks:
            fb = _read(name, "feedback", params["feedback"], work, repo_root)
            results.extend(quality(name, fb.frame, params["feedback"], checks["quality"]))
            window.setdefault("rows", len(fb.frame))
            window.setdefault("sha256", fb.result.get("sha256"))
        if "llm" in checks:
            tr = _read(name, "traffic", params["traffic"], work, repo_root)
            results.append(llm(name, tr.frame, params["traffic"], checks["llm"]))
            window.setdefault("rows", len(tr.frame))
            window.setdefault("sha256", tr.result.get("sha256"))
    breached = any(not r["passed"] for r in results)
    report = {"monitor": name, "env": params.get("env"), "breached": breached, "checks": results, "window": window}
    write_json(out / "report.json", report)
    if breached and params.get("fail_on_breach"):
        failing = ", ".join(f"{r['name']} {r.get('value')}" for r in results if not r["passed"])
        raise StepFailed(f"monitor {name!r} breached ({failing})")
    return report


# ---- drift ---------------------------------------------------------------------------------


def drift(name: str, cur: _Window, ref: _Window, columns: list[str], spec: dict[str, Any],
          out: Path) -> list[dict[str, Any]]:
    cols = list(columns) or sorted(set(ref.types))
    problems = []
    if missing := [c for c in cols if c not in cur.frame.columns]:
        problems.append(f"missing in the current data: {', '.join(missing)}")
    if missing := [c for c in cols if c not in ref.frame.columns]:
        problems.append(f"missing in the reference: {', '.join(missing)}")
    if not columns and (extra := sorted(set(cur.types) - set(ref.types))):
        problems.append(f"not in the reference: {', '.join(extra)}")
    if problems:
        raise ParamError(f"monitor {name!r}: the current data's columns do not match the reference ("
                         + "; ".join(problems) + ")")
    for c in cols:
        if (ref.types.get(c) in NUMERIC_TYPES) != (cur.types.get(c) in NUMERIC_TYPES):
            raise ParamError(f"monitor {name!r}: column {c!r} is {cur.types.get(c)} in the current data but "
                             f"{ref.types.get(c)} in the reference")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in cols if ref.types.get(c) in NUMERIC_TYPES]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=[c for c in cols if c not in numeric])
    # Settings of columns that are not compared are left out (validate warns about them).
    per_method = {c: v["method"] for c, v in spec.get("columns", {}).items() if v.get("method") and c in cols}
    per_threshold = {c: float(v["threshold"]) for c, v in spec.get("columns", {}).items() if v.get("threshold") and c in cols}
    preset = DataDriftPreset(columns=cols, drift_share=float(spec.get("drifted_share", 0.5)),
                             method=spec.get("method"), threshold=spec.get("threshold"),
                             per_column_method=per_method or None, per_column_threshold=per_threshold or None)
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(cur.frame[cols], data_definition=definition),
        Dataset.from_pandas(ref.frame[cols], data_definition=definition))
    snapshot.save_html(str(out / "drift.html"))
    snapshot.save_json(str(out / "drift.json"))
    return drift_results(snapshot.dict(), cols, float(spec.get("drifted_share", 0.5)))


def drift_results(doc: dict[str, Any], cols: list[str], share: float) -> list[dict[str, Any]]:
    """Per column and overall: Evidently's own test verdicts, read from its snapshot."""
    values = {m["id"]: m.get("value") for m in doc.get("metrics", [])}
    per_col: dict[str, dict[str, Any]] = {}
    overall: dict[str, Any] | None = None
    for t in doc.get("tests", []):
        params = (t.get("metric_config") or {}).get("params") or {}
        value = values.get((t.get("metric_config") or {}).get("metric_id"))
        passed = t.get("status") == "SUCCESS"
        if params.get("type", "").endswith("ValueDrift"):
            per_col[params["column"]] = {"name": f"drift:{params['column']}", "passed": passed,
                                         "value": _num(value), "threshold": params.get("threshold"),
                                         "method": params.get("method"), "message": t.get("description", "")}
        elif params.get("type", "").endswith("DriftedColumnsCount"):
            v = value.get("share") if isinstance(value, dict) else None
            overall = {"name": "drift:share", "passed": passed, "value": _num(v), "threshold": share,
                       "message": f"{_num(v)} of the columns drifted (breach at {share})"}
    if overall is None:
        raise StepError("Evidently's report has no drifted-columns test")
    # Column verdicts are details: the dataset breaches on the share, as Evidently's preset says.
    return [overall] + [dict(per_col[c], passed=True, drifted=not per_col[c]["passed"]) for c in cols if c in per_col]


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


# ---- quality and LLM output ---------------------------------------------------------------


def quality(name: str, frame: Any, fb: dict[str, Any], metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import numpy as np
    from sklearn import metrics as skm

    for key in ("label_column", "prediction_column", "score_column"):
        col = fb.get(key)
        if col is not None and col not in frame.columns:
            raise ParamError(f"monitor {name!r}: feedback has no column {col!r} ({key})")
    y, pred = frame[fb["label_column"]].to_numpy(), frame[fb["prediction_column"]].to_numpy()
    out = []
    for m in metrics:
        metric = m["metric"]
        if metric == "auc":
            if not fb.get("score_column"):
                raise ParamError(f"monitor {name!r}: metric auc needs watch.feedback.scoreColumn")
            value = skm.roc_auc_score(y, frame[fb["score_column"]].to_numpy())
        elif metric in ("rmse", "mae"):
            err = y.astype(float) - pred.astype(float)
            value = math.sqrt(float(np.mean(err ** 2))) if metric == "rmse" else float(np.mean(np.abs(err)))
        elif metric == "accuracy":
            value = skm.accuracy_score(y, pred)
        elif metric in ("precision", "recall", "f1"):
            fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[metric]
            value = fn(y, pred, average="binary" if len(set(y.tolist())) <= 2 else "macro", zero_division=0)
        else:
            raise ParamError(f"monitor {name!r}: quality metric {metric!r} is not one of {', '.join(QUALITY_METRICS)}")
        th = Threshold.from_params(m)
        if th.relative:
            raise ParamError(f"monitor {name!r}: quality thresholds are absolute (no baseline in a monitor)")
        passed = th.check(float(value))
        out.append({"name": f"quality:{metric}", "passed": passed, "value": _num(value),
                    "threshold": th.bound(None), "message": f"{metric} {float(value):.4f} (needs {th.op} {th.bound(None):g})"})
    return out


def llm(name: str, frame: Any, tr: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    col = tr["response_column"]
    if col not in frame.columns:
        raise ParamError(f"monitor {name!r}: traffic has no column {col!r}")
    sample = float(tr.get("sample", 1.0))
    responses = [str(v) for v in frame[col].tolist()]
    if sample < 1.0:  # deterministic: every k-th row
        step = max(1, round(1 / sample))
        responses = responses[::step]
    ctx = Context()
    passed_rows = 0
    for text in responses:
        try:
            if all(check(a, text, 0.0, ctx).passed for a in spec["assertions"]):
                passed_rows += 1
        except ParamError as e:
            raise ParamError(f"monitor {name!r}: {e}") from None
    rate = passed_rows / len(responses)
    need = float(spec.get("min_pass_rate", 0.9))
    return {"name": "llm:pass_rate", "passed": rate >= need, "value": _num(rate), "threshold": need,
            "message": f"{passed_rows}/{len(responses)} sampled responses pass every assertion (needs {need:g})"}
