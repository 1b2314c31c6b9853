"""Step `evaluate`: score a trained model on a data split and write `metrics.json`.

Params (task `prompt`, a Prompt rendered per row and judged by assertions: see prompt_eval.py)::

    {"task": "classification",      # classification | regression | generation | prompt
     "metrics": ["auc", "f1"],      # required, non-empty; per task:
                                    #   classification: auc accuracy f1 precision recall logloss pr_auc
                                    #   regression:     rmse mse mae mape r2
                                    #   generation:     rougeL rouge1 exact_match
                                    #   any task:       latency_p50_ms latency_p95_ms
     "split": "test",               # default "test"
     "target": "churned",           # classical; default: the target the model was trained on
     "prompt_field": "prompt",      # generation; default: the fine-tune's, else "prompt"
     "response_field": "response",  # generation; default: the fine-tune's, else "response"
     "max_new_tokens": 32,          # generation; default 32 (greedy decoding)
     "max_rows": null,              # optional cap on rows scored (first N of the split)
     "base_model": null,            # a model served as published: its local base folder,
     "revision": null,              #   evaluated when no `model` input is given (the
     "adapter": null}               #   revision is recorded; Hub adapters cannot load here)

Inputs: `model` (a train output: model.joblib + model.json; or a finetune output: a LoRA
adapter or a full model folder) and `data` (a data_check output).

Binary classification takes the last of the sorted classes as positive (1 of 0/1, "yes" of
no/yes); multi-class f1/precision/recall are macro averages and auc is one-vs-rest. ROUGE is
Google's `rouge-score` package (F-measure, no stemming, averaged over rows); exact_match
compares whitespace-stripped texts. Latency is the wall time of a single-row prediction
(one generation for LLMs) over up to 100 rows after one warm-up call: a run output, not
reproducible, unlike the other metrics.

Output: `metrics.json` ({metric: float}, rounded to 6 digits, sorted keys) and returns
{"metrics": {...}, "rows": n, "split": split}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.runtime import prompt_eval, write_json
from specops.runtime.common import Params, require_input
from specops.runtime.errors import ParamError, StepError
from specops.runtime.generate import finetune_meta, load_causal_lm, model_dir_of
from specops.runtime.tables import load_split, load_split_table
from specops.runtime.train import feature_matrix, target_vector

DIGITS = 6
LATENCY = ("latency_p50_ms", "latency_p95_ms")
METRICS = {
    "classification": ("auc", "accuracy", "f1", "precision", "recall", "logloss", "pr_auc") + LATENCY,
    "regression": ("rmse", "mse", "mae", "mape", "r2") + LATENCY,
    "generation": ("rougeL", "rouge1", "exact_match") + LATENCY,
}
KEYS = ("task", "metrics", "split", "target", "prompt_field", "response_field", "max_new_tokens", "max_rows",
        "base_model", "revision", "adapter")
LATENCY_ROWS = 100


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    if isinstance(params, dict) and params.get("task") == "prompt":
        return prompt_eval.run(params, inputs, out, repo_root)
    p = Params(params, "evaluate", KEYS)
    task = p.str("task", choices=METRICS)
    metrics = p.list("metrics")
    if not metrics:
        raise p.error("metrics", "must name at least one metric")
    for m in metrics:
        if m not in METRICS[task]:

            raise ParamError(f"evaluate: metric {m!r} is not available for {task}"
                             f" (available: {', '.join(METRICS[task])}){suggestion(str(m), METRICS[task])}")
    split = p.str("split", "test")
    max_rows = p.int("max_rows", None, minimum=1)
    model_dir = model_dir_of(p, inputs, repo_root)
    data_dir = require_input(inputs, "data", "evaluate")
    if task == "generation":
        _, rows, _ = load_split(data_dir, split, "evaluate")
        rows = rows[:max_rows] if max_rows else rows
        if not rows:
            raise StepError(f"evaluate: split {split!r} is empty")
        if p.raw("target", None) is not None:
            raise p.error("target", "is for classification and regression; use response_field")
        values = _generation(p, model_dir, rows, metrics, repo_root)
        n = len(rows)
    else:
        for k in ("prompt_field", "response_field", "max_new_tokens"):
            if p.raw(k, None) is not None:
                raise p.error(k, f"is for task generation, not {task}")
        table, _ = load_split_table(data_dir, split, "evaluate")
        table = table.slice(0, max_rows) if max_rows else table
        if not table.num_rows:
            raise StepError(f"evaluate: split {split!r} is empty")
        values = _classical(p, task, model_dir, table, metrics)
        n = table.num_rows
    result = {m: round(float(values[m]), DIGITS) for m in metrics}
    write_json(out / "metrics.json", result)
    return {"metrics": result, "rows": n, "split": split}


# ---- classical (scikit-learn) ------------------------------------------------------------


def _classical(p: Params, task: str, model_dir: Path, table: Any, metrics: list[str]) -> dict[str, float]:
    meta_path = model_dir / "model.json"
    if not (meta_path.is_file() and (model_dir / "model.joblib").is_file()):
        raise ParamError(f"evaluate: input 'model' holds no model.joblib/model.json (a train output) for {task}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("task") != task:
        raise ParamError(f"evaluate: the model was trained for {meta.get('task')}, not {task}")
    target = p.str("target", meta["target"])

    import joblib
    import numpy as np


    model = joblib.load(model_dir / "model.joblib")
    for f in meta["features"] + [{"name": target}]:
        if f["name"] not in table.column_names:
            raise ParamError(f"evaluate: the split has no column {f['name']!r}")
    X = feature_matrix(table, meta["features"])
    y = target_vector(table, target, task, "evaluate")
    out: dict[str, float] = {}
    if task == "regression":
        from sklearn import metrics as skm

        pred = model.predict(X)
        want = {
            "rmse": lambda: float(np.sqrt(skm.mean_squared_error(y, pred))),
            "mse": lambda: float(skm.mean_squared_error(y, pred)),
            "mae": lambda: float(skm.mean_absolute_error(y, pred)),
            # A fraction (0.1 = 10 %), as scikit-learn reports it; rows with y = 0 weigh 1/eps.
            "mape": lambda: float(skm.mean_absolute_percentage_error(y, pred)),
            "r2": lambda: float(skm.r2_score(y, pred)),
        }
    else:
        want = _classification_metrics(model, X, y)
    for m in metrics:
        if m in want:
            out[m] = want[m]()
    if any(m in LATENCY for m in metrics):
        out.update(_latency([lambda i=i: model.predict(X[i:i + 1]) for i in range(min(len(X), LATENCY_ROWS))]))
    return out


def _classification_metrics(model: Any, X: Any, y: Any) -> dict[str, Any]:
    from sklearn import metrics as skm

    classes = list(model.classes_)
    known = set(classes)
    unseen = sorted({str(v) for v in y if v not in known})
    if unseen:
        # A label the model never saw: the evaluation split and training split disagree.
        raise StepError(f"evaluate: labels {', '.join(unseen[:5])} were not in the training split")
    pred = model.predict(X)
    binary = len(classes) == 2
    avg = {"average": "binary", "pos_label": classes[-1]} if binary else {"average": "macro"}

    def auc() -> float:
        if len(set(y.tolist())) < 2:
            raise StepError("evaluate: auc is undefined when the split holds a single class")
        proba = model.predict_proba(X)
        if binary:
            return float(skm.roc_auc_score(y == classes[-1], proba[:, 1]))
        return float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))

    def pr_auc() -> float:
        """Average precision (area under the precision-recall curve); macro over classes."""
        proba = model.predict_proba(X)
        if binary:
            return float(skm.average_precision_score(y == classes[-1], proba[:, 1]))
        onehot = [[v == c for c in classes] for v in y]
        return float(skm.average_precision_score(onehot, proba, average="macro"))

    return {
        "auc": auc,
        "pr_auc": pr_auc,
        "logloss": lambda: float(skm.log_loss(y, model.predict_proba(X), labels=classes)),
        "accuracy": lambda: float(skm.accuracy_score(y, pred)),
        "f1": lambda: float(skm.f1_score(y, pred, zero_division=0, **avg)),
        "precision": lambda: float(skm.precision_score(y, pred, zero_division=0, **avg)),
        "recall": lambda: float(skm.recall_score(y, pred, zero_division=0, **avg)),
    }


def _latency(calls: list) -> dict[str, float]:
    import numpy as np

    if not calls:
        return {}
    calls[0]()  # warm-up: first calls pay for lazy initialisation
    times = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p95_ms": float(np.percentile(times, 95))}


# ---- generation (transformers) -----------------------------------------------------------


def _generation(p: Params, model_dir: Path, rows: list[dict], metrics: list[str], repo_root: Path) -> dict[str, float]:
    meta = finetune_meta(model_dir)
    prompt_field = p.str("prompt_field", meta.get("prompt_field", "prompt"))
    response_field = p.str("response_field", meta.get("response_field", "response"))
    max_new = p.int("max_new_tokens", 32, minimum=1)
    for i, r in enumerate(rows):
        for f in (prompt_field, response_field):
            if not isinstance(r.get(f), str):
                raise ParamError(f"evaluate: row {i + 1} has no text field {f!r}")

    import torch

    model, tokenizer = load_causal_lm(model_dir, repo_root)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(prompt: str) -> str:
        enc = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=pad_id)
        return tokenizer.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True)

    preds = [generate(r[prompt_field]) for r in rows]
    refs = [r[response_field] for r in rows]
    out: dict[str, float] = {}
    rouge = [m for m in metrics if m in ("rougeL", "rouge1")]
    if rouge:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(rouge, use_stemmer=False)
        scores = [scorer.score(ref, pred) for ref, pred in zip(refs, preds)]
        for m in rouge:
            out[m] = sum(s[m].fmeasure for s in scores) / len(scores)
    if "exact_match" in metrics:
        out["exact_match"] = sum(a.strip() == b.strip() for a, b in zip(preds, refs)) / len(refs)
    if any(m in LATENCY for m in metrics):
        out.update(_latency([lambda r=r: generate(r[prompt_field]) for r in rows[:LATENCY_ROWS]]))
    return out
