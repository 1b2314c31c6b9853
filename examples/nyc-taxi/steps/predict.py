"""predict: the trained model's fares for the test split, next to the actual ones
(--model_input: the train step's folder; --test_data: the checked transformed data ->
--predictions folder, data.csv)."""

import argparse
import json
import os
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

parser = argparse.ArgumentParser("predict")
parser.add_argument("--model_input", required=True)
parser.add_argument("--test_data", required=True)
parser.add_argument("--predictions", required=True)
args = parser.parse_args()

model_dir = Path(args.model_input)
model = joblib.load(model_dir / "model.joblib")
features = [f["name"] for f in json.loads((model_dir / "model.json").read_text())["features"]]
test = pq.read_table(Path(args.test_data) / "test.parquet")
X = np.column_stack([test[f].to_numpy(zero_copy_only=False).astype(float) for f in features])
out = test.select(features).append_column("predicted_cost", pa.array(model.predict(X).astype(float)))
out = out.append_column("actual_cost", test["cost"].cast(pa.float64()))
Path(args.predictions).mkdir(parents=True, exist_ok=True)
pacsv.write_csv(out, Path(args.predictions) / "data.csv")
print(f"predict: {out.num_rows} predictions")
