"""SageMaker scikit-learn container handler for a model trained by the specops step runtime.

The container (sagemaker-scikit-learn, its inference toolkit) imports this file as the
user module (SAGEMAKER_PROGRAM) and calls model_fn / input_fn / predict_fn / output_fn. The
model folder holds what the train step wrote: `model.joblib` (a fitted scikit-learn Pipeline)
and `model.json` (its features, in order, with their kinds). Requests:

    application/json  {"instances": [{"feature": value, ...}, ...]}   (or a bare list of them)
    text/csv          rows of feature values in the model's feature order, no header

Responses: application/json {"predictions": [...]}. Standard library, numpy and joblib only:
specops is not installed in this container.
"""

import csv
import io
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    return {"model": joblib.load(os.path.join(model_dir, "model.joblib")), "features": meta["features"]}


def _matrix(rows, features):
    X = np.empty((len(rows), len(features)), dtype=object)
    for j, f in enumerate(features):
        for i, row in enumerate(rows):
            v = row[f["name"]] if isinstance(row, dict) else row[j]
            if f["type"] == "numeric":
                X[i, j] = float("nan") if v in (None, "") else float(v)
            else:
                X[i, j] = "__missing__" if v in (None, "") else str(v)
    return X


def input_fn(body, content_type):
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if content_type == "text/csv":
        return [row for row in csv.reader(io.StringIO(body)) if row]
    if content_type == "application/json":
        doc = json.loads(body)
        return doc["instances"] if isinstance(doc, dict) else doc
    raise ValueError(f"unsupported content type {content_type!r} (application/json or text/csv)")


def predict_fn(rows, loaded):
    return loaded["model"].predict(_matrix(rows, loaded["features"]))


def output_fn(prediction, accept):
    return json.dumps({"predictions": np.asarray(prediction).tolist()}), "application/json"
