"""score: mean squared error and R^2 of the predictions, and the model's coefficients, in
the --score_report folder's score.txt (and as the step's result.json)."""

import argparse
import json
import os
from pathlib import Path

import joblib
import numpy as np
import pyarrow.csv as pacsv

parser = argparse.ArgumentParser("score")
parser.add_argument("--predictions", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--score_report", required=True)
args = parser.parse_args()

p = pacsv.read_csv(Path(args.predictions) / "data.csv")
actual = p["actual_cost"].to_numpy()
predicted = p["predicted_cost"].to_numpy()
mse = float(np.mean((actual - predicted) ** 2))
r2 = float(1 - np.sum((actual - predicted) ** 2) / np.sum((actual - actual.mean()) ** 2))
model = joblib.load(Path(args.model) / "model.joblib")
coef = model[-1].coef_.tolist()
report = Path(args.score_report)
report.mkdir(parents=True, exist_ok=True)
(report / "score.txt").write_text(f"Scored with the following model:\n{model[-1]}\n Coefficients: \n {coef} \n"
                                  f"Mean squared error: {mse:.2f} \nCoefficient of determination: {r2:.2f} \n")
(Path(os.environ["SPECOPS_OUTPUT_DIR"]) / "result.json").write_text(json.dumps({"mse": mse, "r2": r2}))
print(f"score: mse {mse:.2f}, r2 {r2:.2f}")
