"""Step `predict`: batch scoring. A trained classical model scores a dataset into a new table.

Params::

    {"split": "test",            # optional: one split of the data_check output; null = every
                                 #   split, in the manifest's order
     "format": "parquet",        # parquet | csv: the table written
     "output": "predictions",    # the output folder's name (what a Dataset's producedBy names)
     "publish": {"predictions": "s3://bucket/prod/m/outputs/score/predictions"}}
                                 # optional: where the folder is copied after success (another
                                 #   model's Dataset reads it there; see publish.py)

Inputs: `model` (a train output: model.joblib + model.json), `data` (a data_check output) and,
optionally, `registration` (a register output: scoring waits for the model to pass its gates;
not read).

Output: `<output>/data.<format>`: every column of the scored rows, plus `prediction` (and, for
a classifier, `probability`: the probability of the positive class, the last of the sorted
classes, for a binary one). Columnar: no Python loop over rows. Returns {rows, split, output,
columns}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.runtime.common import Params, require_input
from specops.runtime.errors import ParamError
from specops.runtime.publish import publish_outputs, safe_segment
from specops.runtime.tables import load_split_table, read_manifest
from specops.runtime.train import feature_matrix

KEYS = ("split", "format", "output", "publish")
FORMATS = ("parquet", "csv")


def load_model(model_dir: Path, where: str) -> tuple[Any, dict[str, Any]]:
    """(the fitted pipeline, model.json) of a train output."""
    meta_path = model_dir / "model.json"
    if not (meta_path.is_file() and (model_dir / "model.joblib").is_file()):
        raise ParamError(f"{where}: input 'model' holds no model.joblib/model.json (a train output)")
    import joblib

    return joblib.load(model_dir / "model.joblib"), json.loads(meta_path.read_text(encoding="utf-8"))


def score_table(model: Any, meta: dict[str, Any], table: Any) -> Any:
    """`table` with `prediction` (and a classifier's `probability`) appended."""
    import numpy as np
    import pyarrow as pa

    missing = [f["name"] for f in meta["features"] if f["name"] not in table.column_names]
    if missing:
        raise ParamError(f"predict: the data lacks the model's feature(s) {', '.join(missing)}")
    X = feature_matrix(table, meta["features"])
    y = model.predict(X) if table.num_rows else np.array([])
    out = table.append_column("prediction", pa.array(y.tolist()))
    if meta.get("task") == "classification" and hasattr(model, "predict_proba") and len(meta.get("classes") or []) == 2:
        proba = model.predict_proba(X)[:, -1] if table.num_rows else np.array([])
        out = out.append_column("probability", pa.array(proba.astype(float)))
    return out


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    p = Params(params, "predict", KEYS)
    split = p.str("split", None)
    fmt = p.str("format", "parquet", choices=FORMATS)
    name = safe_segment(p.str("output", "predictions"), "predict")
    publish = p.dict("publish", {})
    model, meta = load_model(require_input(inputs, "model", "predict"), "predict")
    data = require_input(inputs, "data", "predict")
    splits = [split] if split is not None else list(read_manifest(data, "predict").get("splits", {}))

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tables = [load_split_table(data, s, "predict")[0] for s in splits]
    table = pa.concat_tables(tables) if tables else pa.table({})
    scored = score_table(model, meta, table)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(scored, folder / "data.parquet")
    else:
        pacsv.write_csv(scored, folder / "data.csv")
    publish_outputs(out, publish, repo_root, "predict")
    return {"rows": scored.num_rows, "split": split, "output": name, "columns": list(scored.column_names)}
