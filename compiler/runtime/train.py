"""Step `train`: fit a classical scikit-learn model on the data_check output's train split.

Params::

    {"algorithm": "logistic_regression",   # logistic_regression | linear_regression |
                                           #   random_forest | gradient_boosting
     "task": "classification",             # classification | regression
     "target": "churned",                  # required: the label column
     "features": ["tenure_months", ...],   # optional; null = every column but the target
     "hyperparameters": {"C": 1.0},        # optional; names checked against the estimator
     "split": "train",                     # optional; the split to fit on (default train)
     "seed": 0}                            # optional; becomes random_state where there is one

The algorithm is looked up in a fixed registry (`ALGORITHMS`): nothing from a spec is ever
imported by dotted path. Numeric columns (int, float, bool) are median-imputed and
standardised; string columns are one-hot encoded (unknown categories ignored at predict
time; nulls become their own category). Date columns are refused as features.

Inputs: `data` (a data_check output). Output: `model.joblib` (a fitted sklearn Pipeline) and
`model.json` ({framework: "sklearn", sklearn_version, algorithm, task, target,
features: [{name, type}], hyperparameters, seed, classes, train_rows}). Returns
{algorithm, task, target, features, train_rows, train_score} (train_score: accuracy or R^2
on the training split, rounded to 6 digits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.runtime import write_json
from specops.runtime.common import Params, require_input
from specops.runtime.errors import ParamError, StepError
from specops.runtime.tables import NUMERIC, load_split

# name -> task -> (module, class). Fixed: the only estimators a spec can name.
ALGORITHMS: dict[str, dict[str, tuple[str, str]]] = {
    "logistic_regression": {"classification": ("sklearn.linear_model", "LogisticRegression")},
    "linear_regression": {"regression": ("sklearn.linear_model", "LinearRegression")},
    "random_forest": {
        "classification": ("sklearn.ensemble", "RandomForestClassifier"),
        "regression": ("sklearn.ensemble", "RandomForestRegressor"),
    },
    "gradient_boosting": {
        "classification": ("sklearn.ensemble", "GradientBoostingClassifier"),
        "regression": ("sklearn.ensemble", "GradientBoostingRegressor"),
    },
}
TASKS = ("classification", "regression")
MISSING_CATEGORY = "__missing__"
KEYS = ("algorithm", "task", "target", "features", "hyperparameters", "split", "seed")


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "train", KEYS)
    algorithm = p.str("algorithm", choices=ALGORITHMS)
    task = p.str("task", choices=TASKS)
    if task not in ALGORITHMS[algorithm]:
        raise p.error("algorithm", f"{algorithm!r} does not do {task} (it does: {', '.join(ALGORITHMS[algorithm])})")
    target = p.str("target")
    features = p.list("features", None)
    hyper = p.dict("hyperparameters", {})
    split = p.str("split", "train")
    seed = p.int("seed", 0, minimum=0)

    columns, rows, types = load_split(require_input(inputs, "data", "train"), split, "train")
    features = select_features(columns, types, target, features)
    X = feature_matrix(rows, features)
    y = target_vector(rows, target, task, "train")

    estimator = make_estimator(algorithm, task, hyper, seed)
    model = make_pipeline(features, estimator)
    try:
        model.fit(X, y)
    except ValueError as e:  # e.g. a single class in the training split
        raise StepError(f"train: {algorithm} could not fit: {e}") from e
    score = float(model.score(X, y))

    import joblib
    import sklearn

    joblib.dump(model, out / "model.joblib")
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
    meta = {
        "framework": "sklearn",
        "sklearn_version": sklearn.__version__,
        "algorithm": algorithm,
        "task": task,
        "target": target,
        "features": features,
        "hyperparameters": hyper,
        "seed": seed,
        "classes": classes,
        "train_rows": len(rows),
    }
    write_json(out / "model.json", meta)
    return {"algorithm": algorithm, "task": task, "target": target,
            "features": [f["name"] for f in features], "train_rows": len(rows),
            "train_score": round(score, 6)}


def select_features(columns: list[str], types: dict[str, str], target: str,
                    features: list | None) -> list[dict[str, str]]:

    if target not in columns:
        raise ParamError(f"train: target {target!r} is not a column{suggestion(target, columns)}")
    names = [c for c in columns if c != target] if features is None else features
    out = []
    for f in names:
        if not isinstance(f, str) or f not in columns:
            raise ParamError(f"train: feature {f!r} is not a column{suggestion(str(f), columns)}")
        if f == target:
            raise ParamError(f"train: the target {target!r} cannot also be a feature")
        if types[f] in ("date", "datetime"):
            raise ParamError(f"train: feature {f!r} is a {types[f]}; derive a numeric feature from it")
        out.append({"name": f, "type": "numeric" if types[f] in NUMERIC else "categorical"})
    if not out:
        raise ParamError("train: no features")
    return out


def feature_matrix(rows: list[dict[str, Any]], features: list[dict[str, str]]):
    """An object ndarray: floats (nan for null) for numeric, strings for categorical columns."""
    import numpy as np

    X = np.empty((len(rows), len(features)), dtype=object)
    for j, f in enumerate(features):
        name = f["name"]
        if f["type"] == "numeric":
            X[:, j] = [float("nan") if r.get(name) is None else float(r[name]) for r in rows]
        else:
            X[:, j] = [MISSING_CATEGORY if r.get(name) is None else str(r[name]) for r in rows]
    return X


def target_vector(rows: list[dict[str, Any]], target: str, task: str, where: str):
    import numpy as np

    values = [r.get(target) for r in rows]
    nulls = sum(v is None for v in values)
    if nulls:
        raise StepError(f"{where}: target {target!r} is null in {nulls} row(s)")
    if task == "regression":
        return np.array(values, dtype=float)
    return np.array(values)


def make_estimator(algorithm: str, task: str, hyper: dict, seed: int):
    import importlib


    module, cls_name = ALGORITHMS[algorithm][task]
    cls = getattr(importlib.import_module(module), cls_name)
    valid = cls().get_params()
    for k, v in hyper.items():
        if k not in valid:
            raise ParamError(f"train: {algorithm} has no hyperparameter {k!r}{suggestion(k, valid)}")
        if k == "random_state":
            raise ParamError("train: set 'seed', not hyperparameters.random_state")
        if not isinstance(v, (str, int, float, bool, type(None))):
            raise ParamError(f"train: hyperparameter {k!r} must be a scalar, got {json.dumps(v)}")
    kwargs = dict(hyper)
    if "random_state" in valid:
        kwargs["random_state"] = seed
    try:
        est = cls(**kwargs)
        # sklearn validates most values at fit time; do it now for a clear message.
        if hasattr(est, "_validate_params"):
            est._validate_params()
    except (TypeError, ValueError) as e:
        raise ParamError(f"train: bad hyperparameters for {algorithm}: {e}") from e
    return est


def make_pipeline(features: list[dict[str, str]], estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = [j for j, f in enumerate(features) if f["type"] == "numeric"]
    cat = [j for j, f in enumerate(features) if f["type"] == "categorical"]
    parts = []
    if num:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                                       ("scale", StandardScaler())]), num))
    if cat:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat))
    return Pipeline([("prep", ColumnTransformer(parts)), ("model", estimator)])
