"""Step `train`: fit a classical model (scikit-learn, XGBoost, LightGBM) on a data_check split.

Params::

    {"algorithm": "xgboost",               # a short name (estimators.SHORT_NAMES: logistic_regression,
                                           #   linear_regression, random_forest, gradient_boosting,
                                           #   xgboost, lightgbm) or a catalogue import path
                                           #   (sklearn.linear_model.Ridge)
     "task": "regression",                 # classification | regression
     "target": "rings",                    # required: the label column
     "features": ["length", ...],          # optional; null = every column but the target
     "hyperparameters": {"eta": 0.2},      # optional; checked against the catalogue, aliases renamed
     "split": "train",                     # optional; the split to fit on (default train)
     "seed": 0,                            # optional; becomes random_state
     "export": null}                       # optional: "xgboost" | "lightgbm" -- also write the
                                           #   library's own booster (model.ubj / model.txt) for
                                           #   MLServer's XGBoost / LightGBM runtime; numeric
                                           #   features only, fitted without the preprocessing
                                           #   (trees need no scaling and take NaN as missing)

The algorithm is looked up in the generated catalogue (estimators.json): nothing from a spec is
ever imported unless the catalogue lists it. Numeric columns (int, float, bool) are
median-imputed and standardised; string columns are one-hot encoded (unknown categories
ignored at predict time; nulls become their own category). Date columns are refused as
features. The split is read as Arrow columns: no Python loop over rows.

Inputs: `data` (a data_check output). Output: `model.joblib` (a fitted sklearn Pipeline),
with `export` the booster file too, and
`model.json` ({framework, library, library_version, algorithm, estimator, task, target,
features: [{name, type}], hyperparameters, seed, classes, train_rows}). Returns
{algorithm, task, target, features, train_rows, train_score} (train_score: accuracy or R^2
on the training split, rounded to 6 digits).
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.runtime import write_json
from specops.runtime.common import Params, require_input
from specops.runtime.errors import ParamError, StepError
from specops.runtime.estimators import check_hyperparameters, library_of, resolve
from specops.runtime.tables import NUMERIC, load_split_table

TASKS = ("classification", "regression")
MISSING_CATEGORY = "__missing__"
KEYS = ("algorithm", "task", "target", "features", "hyperparameters", "split", "seed", "export")
# What `export` writes, per library: the file MLServer's runtime for it loads.
EXPORTS = {"xgboost": "model.ubj", "lightgbm": "model.txt"}
# The import name of each catalogue library (what `library_version` reports).
MODULES = {"scikit-learn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "train", KEYS)
    algorithm = p.str("algorithm")
    task = p.str("task", choices=TASKS)
    path, why = resolve(algorithm, task)
    if path is None:
        raise ParamError(f"train: {why}")
    target = p.str("target")
    features = p.list("features", None)
    hyper = p.dict("hyperparameters", {})
    split = p.str("split", "train")
    seed = p.int("seed", 0, minimum=0)
    for k, v in hyper.items():
        if not isinstance(v, (str, int, float, bool, type(None))):
            raise ParamError(f"train: hyperparameter {k!r} must be a scalar, got {json.dumps(v)}")
    kwargs, problems = check_hyperparameters(path, hyper)
    if problems:
        raise ParamError("train: " + "; ".join(msg for _, msg in problems))

    table, types = load_split_table(require_input(inputs, "data", "train"), split, "train")
    columns = list(table.column_names)
    features = select_features(columns, types, target, features)
    X = feature_matrix(table, features)
    y = target_vector(table, target, task, "train")

    export = p.str("export", None, choices=tuple(EXPORTS))
    estimator = make_estimator(path, kwargs, seed, algorithm)
    if export is not None:
        if library_of(path) != export or any(f["type"] != "numeric" for f in features):
            raise ParamError(f"train: export {export!r} needs a {export} estimator on numeric features only")
        model = native_pipeline(estimator)
    else:
        model = make_pipeline(features, estimator)
    try:
        model.fit(X, y)
    except ValueError as e:  # e.g. a single class in the training split
        raise StepError(f"train: {algorithm} could not fit: {e}") from e
    score = float(model.score(X, y))

    import joblib

    library = library_of(path)
    joblib.dump(model, out / "model.joblib")
    if export == "xgboost":
        estimator.save_model(out / EXPORTS[export])
    elif export == "lightgbm":
        estimator.booster_.save_model(str(out / EXPORTS[export]))
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])]
    meta = {
        "framework": "sklearn",
        "library": library,
        "library_version": importlib.import_module(MODULES[library]).__version__,
        "algorithm": algorithm,
        "estimator": path,
        "task": task,
        "target": target,
        "features": features,
        "hyperparameters": kwargs,
        "seed": seed,
        "classes": classes,
        "train_rows": table.num_rows,
    }
    write_json(out / "model.json", meta)
    return {"algorithm": algorithm, "task": task, "target": target,
            "features": [f["name"] for f in features], "train_rows": table.num_rows,
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


def feature_matrix(table: Any, features: list[dict[str, str]]):
    """An object ndarray from Arrow columns: floats (nan for null) for numeric, strings for
    categorical columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    X = np.empty((table.num_rows, len(features)), dtype=object)
    for j, f in enumerate(features):
        col = table.column(f["name"])
        if f["type"] == "numeric":
            X[:, j] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            text = pc.fill_null(pc.cast(col, pa.string()), MISSING_CATEGORY)
            X[:, j] = text.to_numpy(zero_copy_only=False)
    return X


def target_vector(table: Any, target: str, task: str, where: str):
    import numpy as np

    col = table.column(target)
    if col.null_count:
        raise StepError(f"{where}: target {target!r} is null in {col.null_count} row(s)")
    values = col.to_numpy(zero_copy_only=False)
    if task == "regression":
        return values.astype(float)
    return np.asarray(values)


def make_estimator(path: str, kwargs: dict, seed: int, algorithm: str):
    """An instance of the catalogue's class at `path` (the only classes ever imported)."""
    module, cls_name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), cls_name)
    kwargs = dict(kwargs)
    accepted = inspect.signature(cls).parameters
    if "random_state" in accepted:
        kwargs["random_state"] = seed
    if path.startswith("lightgbm.") and "verbosity" not in kwargs and "verbose" not in kwargs:
        kwargs["verbosity"] = -1  # its per-iteration warnings are not the step's output
    try:
        est = cls(**kwargs)
        # sklearn validates most values at fit time; do it now for a clear message.
        if path.startswith("sklearn.") and hasattr(est, "_validate_params"):
            est._validate_params()
    except (TypeError, ValueError) as e:
        raise ParamError(f"train: bad hyperparameters for {algorithm}: {e}") from e
    return est


def native_pipeline(estimator):
    """The estimator alone behind a float cast (np.asarray: picklable, no lambda), so the
    booster MLServer serves sees exactly the features this pipeline does."""
    import numpy as np
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    return Pipeline([("float", FunctionTransformer(np.asarray, kw_args={"dtype": "float64"})), ("model", estimator)])


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
