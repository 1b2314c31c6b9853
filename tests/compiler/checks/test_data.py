"""Datasets and classical models at validate time: local data headers, check columns, and
estimators with their hyperparameters, each problem at its own line (nothing runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]


def abalone(tmp_path: Path) -> Path:
    repo = tmp_path / "abalone"
    shutil.copytree(ROOT / "examples" / "abalone", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    return repo


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def diags(repo: Path) -> list:
    return [d for d in analyze(repo).diagnostics.sorted() if d.severity == "error"]


def test_the_abalone_example_validates(tmp_path: Path) -> None:
    assert diags(abalone(tmp_path)) == []


def test_misspelled_hyperparameters_each_at_their_line(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    model = repo / "models" / "abalone.yaml"
    edit(model, "    eta: 0.2", "    etta: 0.2")
    edit(model, "    min_child_weight: 6", "    min_child_wieght: 6")
    edit(model, "    subsample: 0.7", "    subsample: high")
    got = [(d.code, d.file, d.pos.line, d.message) for d in diags(repo)]
    assert got == [
        ("hyperparameter", "models/abalone.yaml", 20, "XGBRegressor has no hyperparameter 'etta'; did you mean"
                                                      " 'eta' (= learning_rate)?"),
        ("hyperparameter", "models/abalone.yaml", 22, "XGBRegressor has no hyperparameter 'min_child_wieght';"
                                                      " did you mean 'min_child_weight'?"),
        ("hyperparameter", "models/abalone.yaml", 23, "XGBRegressor: 'subsample' takes float or int or null,"
                                                      " not str 'high'"),
    ]


def test_unknown_algorithm_and_estimator_paths(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    model = repo / "models" / "abalone.yaml"
    edit(model, "algorithm: xgboost", "algorithm: sklearn.linear_model.Ridge")
    edit(model, "  hyperparameters:\n", "  hyperparameters:\n    alpha: 0.5\n")
    got = [d.message for d in diags(repo)]
    # Ridge knows alpha; it has none of XGBoost's names.
    assert "Ridge has no hyperparameter 'eta'" in got and not any("'alpha'" in m for m in got)
    edit(model, "algorithm: sklearn.linear_model.Ridge", "algorithm: os.system")
    got = diags(repo)
    assert [d.pos.line for d in got] == [11] and got[0].message.startswith("unknown algorithm 'os.system'")


def test_a_headerless_file_declared_with_a_header_is_one_error_with_a_hint(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    edit(repo / "datasets" / "abalone.yaml", "csv: {header: false}", "csv: {header: true}")
    got = diags(repo)
    assert len(got) == 1
    d = got[0]
    assert (d.code, d.file, d.pos.line) == ("data-schema", "datasets/abalone.yaml", 14)
    assert d.message == "no declared column is in the header of 'data/abalone.csv'"
    assert "set `source.csv.header: false`" in d.notes[0]


def test_header_and_field_count_mismatches_at_the_column(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    ds = repo / "datasets" / "abalone.yaml"
    edit(ds, "    - {name: rings, type: int}\n", "")
    edit(repo / "models" / "abalone.yaml", "target: rings", "target: shell_weight")
    edit(ds, "    - {type: range, column: rings, min: 1, max: 29}\n", "")
    edit(ds, "    - {type: mean, column: rings, min: 8, max: 12}\n", "")
    got = diags(repo)
    assert [(d.pos.line, d.message) for d in got] == [
        (14, "'data/abalone.csv' has 9 field(s) per row but `columns` declares 8 (a CSV without a header is"
             " read by position)")]
    # With a header row, a declared name missing from it is reported at that column.
    (repo / "data" / "abalone.csv").write_text("sex,length,diam\nM,0.4,0.3\n")
    edit(ds, "csv: {header: false}", "csv: {header: true}")
    got = diags(repo)
    assert (got[0].pos.line, got[0].message) == (17, "column 'diameter' is not in the header of 'data/abalone.csv';"
                                                     " did you mean 'diam'?")


def test_parquet_schema_is_read_from_the_footer(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    pq.write_table(pa.table({"sex": ["M"], "length": [0.4]}), repo / "data" / "abalone.parquet")
    ds = repo / "datasets" / "abalone.yaml"
    edit(ds, "file://data/abalone.csv", "file://data/abalone.parquet")
    edit(ds, "format: csv", "format: parquet")
    edit(ds, "    csv: {header: false}\n", "")
    got = diags(repo)
    assert [d.pos.line for d in got] == list(range(16, 23))
    assert got[0].message == "column 'diameter' is not in the schema of 'data/abalone.parquet'"


def test_csv_options_are_typed(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    edit(repo / "datasets" / "abalone.yaml", "    csv: {header: false}", "    csv: {header: false, delimiter: ';;'}")
    got = [(d.pos.line, d.message) for d in diags(repo)]
    assert len(got) == 1 and got[0][0] == 13 and "at most 1 character" in got[0][1], got


def test_check_columns_are_declared(tmp_path: Path) -> None:
    repo = abalone(tmp_path)
    ds = repo / "datasets" / "abalone.yaml"
    edit(ds, "{type: range, column: rings, min: 1, max: 29}", "{type: range, column: sex, min: 1, max: 29}")
    edit(ds, "{type: mean, column: rings, min: 8, max: 12}", "{type: mean, column: ring, min: 8, max: 12}")
    edit(ds, "{type: schemaDrift}", "{type: references, column: sex, dataset: abalone, key: gender}")
    got = [(d.pos.line, d.message) for d in diags(repo)]
    assert (28, "range needs a numeric column; 'sex' is string") in got
    assert (30, "no declared column 'ring'; did you mean 'rings'?") in got
    # A dataset may reference itself (a parent key): no cycle, but the key must exist.
    assert got[2:] == [(31, "dataset 'abalone' has no column 'gender'")]
