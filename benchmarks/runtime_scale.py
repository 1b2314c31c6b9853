"""The step runtime at scale (figures, not assertions; never collected by pytest).

    python benchmarks/runtime_scale.py [--rows 10000000] [--steps 1000000,3000000] [--xgb-rows 1000000]
                                       [--old-rows 1000000] [--old-commit 0568b54] [--keep DIR]

Generates a 20-column table (ids, floats, ints, a category, a date, some nulls) with DuckDB into a
temp folder, as CSV and as Parquet, then runs each measurement in a fresh process and reports its
wall time and peak RSS (ru_maxrss of the child):

  data_check   every check kind that streams (rowCount, nullFraction, allowedValues, range,
               regex, mean, quantile, unique) plus 80/10/10 splits written as Parquet,
               for each row count in --steps and --rows: RSS should not grow with rows
               (targets at 10M rows on the 2-core machine: <= 30 s, peak RSS <= 1.5 GB)
  xgboost      the train step (XGBoost regression) on a --xgb-rows split
  old runtime  the data_check of --old-commit (stdlib csv, rows as dicts) on --old-rows rows,
               side by side with the new one on the same file, for the ratio

About 3 GB of disk at 10M rows. Set SPECOPS_ENGINE_MEMORY to change DuckDB's memory limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLS = 20


def generate(folder: Path, rows: int) -> tuple[Path, Path]:
    import duckdb

    csv, parquet = folder / f"t{rows}.csv", folder / f"t{rows}.parquet"
    if csv.exists() and parquet.exists():
        return csv, parquet
    select = f"""
      SELECT i AS id,
             hash(i) % 1000 AS customer,
             ['month-to-month', 'one-year', 'two-year'][(i % 3) + 1] AS contract,
             CASE WHEN i % 97 = 0 THEN NULL ELSE (hash(i * 7) % 10000) / 100.0 END AS charges,
             DATE '2026-01-01' + CAST(i % 300 AS INTEGER) AS day,
             'C' || lpad(CAST(i % 100000 AS VARCHAR), 6, '0') AS code,
             {", ".join(f"(hash(i + {k}) % 100000) / 1000.0 AS f{k}" for k in range(COLS - 7))},
             CAST(hash(i) % 2 AS INTEGER) AS label
      FROM range({rows}) t(i)"""
    con = duckdb.connect()
    con.execute(f"COPY ({select}) TO '{csv}' (HEADER, DELIMITER ',')")
    con.execute(f"COPY ({select}) TO '{parquet}' (FORMAT PARQUET)")
    return csv, parquet


CHECKS = [
    {"type": "rowCount", "min": 1},
    {"type": "nullFraction", "column": "charges", "max": 0.05},
    {"type": "allowedValues", "column": "contract", "values": ["month-to-month", "one-year", "two-year"]},
    {"type": "range", "column": "f0", "min": 0, "max": 100},
    {"type": "regex", "column": "code", "pattern": "C[0-9]{6}"},
    {"type": "mean", "column": "f1", "min": 0, "max": 100},
    {"type": "quantile", "column": "f2", "q": 0.5, "min": 0, "max": 100},
    {"type": "unique", "column": "id"},
]


def dataset(path: Path) -> dict:
    schema = [{"name": "id", "type": "int"}, {"name": "charges", "type": "float"}, {"name": "day", "type": "date"}]
    return {"name": "bench", "uri": str(path), "schema": schema, "checks": CHECKS,
            "splits": {"train": 0.8, "validation": 0.1, "test": 0.1}}


def measure(code: str, env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of `python -c code` in a fresh process; the
    child reports its own peak (ru_maxrss), so one big run does not hide a small one."""
    code += "; import resource as _r; print('RSS', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    rss = int(lines[-1].split()[1]) / 1024
    return wall, rss, "\n".join(lines[:-1])


def data_check_code(path: Path, out: Path) -> str:
    params = json.dumps({"dataset": dataset(path)})
    return ("import json, sys; from specops.runtime import run_step; "
            f"r = run_step('data_check', json.loads({params!r}), inputs={{}}, output_dir={str(out)!r},"
            f" repo_root={str(path.parent)!r}); print(json.dumps(r))")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--steps", default="1000000,3000000")
    ap.add_argument("--xgb-rows", type=int, default=1_000_000)
    ap.add_argument("--old-rows", type=int, default=1_000_000)
    ap.add_argument("--old-commit", default="0568b54")
    ap.add_argument("--keep", default=None, help="a folder to keep the generated files in")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="specops-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    sizes = sorted({int(s) for s in args.steps.split(",") if s} | {args.rows})
    print(f"{'what':<34} {'rows':>11} {'wall s':>8} {'peak RSS MB':>12}")
    for rows in sizes:
        t0 = time.perf_counter()
        csv, parquet = generate(folder, rows)
        print(f"{'generate csv+parquet':<34} {rows:>11,} {time.perf_counter() - t0:>8.1f} {'':>12}"
              f"  ({csv.stat().st_size / 1e9:.2f} GB csv, {parquet.stat().st_size / 1e9:.2f} GB parquet)")
        for label, path in (("data_check + splits, csv", csv), ("data_check + splits, parquet", parquet)):
            out = folder / f"out-{label.split()[-1]}-{rows}"
            wall, rss, _ = measure(data_check_code(path, out), env)
            print(f"{label:<34} {rows:>11,} {wall:>8.1f} {rss:>12.0f}")

    # XGBoost on the train split of a data_check output.
    csv, _ = generate(folder, args.xgb_rows)
    data = folder / f"out-csv-{args.xgb_rows}"
    if not (data / "dataset.json").exists():
        measure(data_check_code(csv, data), env)
    feats = ["charges", "contract"] + [f"f{k}" for k in range(1, COLS - 7)]
    train = json.dumps({"algorithm": "xgboost", "task": "regression", "target": "f0", "features": feats,
                        "hyperparameters": {"n_estimators": 50, "max_depth": 6, "eta": 0.3}})
    code = ("import json; from specops.runtime import run_step; "
            f"r = run_step('train', json.loads({train!r}), inputs={{'data': {str(data)!r}}},"
            f" output_dir={str(folder / 'model')!r}); print(r['train_rows'])")
    wall, rss, outp = measure(code, env)
    print(f"{'train xgboost (80% split)':<34} {int(outp.strip()):>11,} {wall:>8.1f} {rss:>12.0f}")

    # Today's runtime (before the columnar engine), side by side on the same file.
    old = folder / "old"
    if not (old / "specops").exists():
        (old / "specops").mkdir(parents=True)
        arch = subprocess.run(["git", "archive", args.old_commit, "compiler"], cwd=REPO, capture_output=True,
                              check=True).stdout
        subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(old / "specops")], input=arch, check=True)
    csv, _ = generate(folder, args.old_rows)
    old_params = dataset(csv)
    old_params["checks"] = [c for c in CHECKS if c["type"] in ("rowCount", "nullFraction", "allowedValues", "unique")]
    code_old = ("import json; from specops.runtime import run_step; "
                f"r = run_step('data_check', json.loads({json.dumps({'dataset': old_params})!r}), inputs={{}},"
                f" output_dir={str(folder / 'out-old')!r}, repo_root={str(csv.parent)!r}); print(r['rows'])")
    wall_old, rss_old, _ = measure(code_old, {"PYTHONPATH": str(old)})
    new_params = {"dataset": old_params}
    code_new = code_old.replace(json.dumps(new_params), json.dumps(new_params)).replace("out-old", "out-new")
    wall_new, rss_new, _ = measure(code_new, env)
    print(f"{'old runtime data_check (csv)':<34} {args.old_rows:>11,} {wall_old:>8.1f} {rss_old:>12.0f}")
    print(f"{'new runtime data_check (csv)':<34} {args.old_rows:>11,} {wall_new:>8.1f} {rss_new:>12.0f}")
    print(f"ratio old/new: {wall_old / wall_new:.1f}x time")
    if args.keep:
        print(f"files in {folder}")
    else:  # about 5 GB at 10M rows: never leave it in /tmp
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
