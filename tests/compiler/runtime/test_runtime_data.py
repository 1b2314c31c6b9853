"""The data_check step on the columnar engine: CSV options, every check kind in one pass,
deterministic splits, lock pins, and sources beyond local files (S3 on moto, the local
Hugging Face cache, GCS through a double)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from specops.runtime import ParamError, StepFailed, run_step
from specops.runtime.splits import Permutation, split_counts

ABALONE = Path(__file__).resolve().parents[3] / "examples" / "abalone" / "data" / "abalone.csv"
COLUMNS = ["sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight",
           "shell_weight", "rings"]
SCHEMA = [{"name": c, "type": "string" if c == "sex" else "int" if c == "rings" else "float"} for c in COLUMNS]


def abalone(**over) -> dict:
    d = {"name": "abalone", "uri": "file://data/abalone.csv", "format": "csv", "csv": {"header": False},
         "schema": SCHEMA, "splits": {"train": 0.7, "validation": 0.15, "test": 0.15}, "checks": [], "seed": 0}
    d.update(over)
    return d


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "data" / "abalone.csv").write_bytes(ABALONE.read_bytes())
    return tmp_path / "repo"


def check(repo: Path, out: Path, **over) -> dict:
    return run_step("data_check", {"dataset": abalone(**over)}, inputs={}, output_dir=str(out), repo_root=str(repo))


def test_headerless_csv_is_named_by_the_schema_and_split_exactly(repo, tmp_path):
    res = check(repo, tmp_path / "o")
    assert res["rows"] == 4177 and res["splits"] == {"train": 2924, "validation": 627, "test": 626}
    parts = [pq.read_table(tmp_path / "o" / f"{s}.parquet") for s in ("train", "validation", "test")]
    assert all(t.column_names == COLUMNS for t in parts)
    assert str(parts[0].schema.field("rings").type) == "int64"
    # The three splits are disjoint and cover every row of the file.
    allrows = pa.concat_tables(parts).to_pylist()
    assert len({tuple(r.values()) for r in allrows}) == len({tuple(r.values()) for r in
                                                            pq.read_table(tmp_path / "o" / "train.parquet").to_pylist()}) \
        + len({tuple(r.values()) for r in parts[1].to_pylist()}) + len({tuple(r.values()) for r in parts[2].to_pylist()})
    manifest = json.loads((tmp_path / "o" / "dataset.json").read_text())
    assert manifest["format"] == "parquet" and [c["type"] for c in manifest["schema"]][-1] == "int"
    assert res["digest"].startswith("sha256:") and res["sha256"] == res["digest"][7:]


def test_splits_do_not_depend_on_threads_or_batches(repo, tmp_path, monkeypatch):
    check(repo, tmp_path / "a")
    monkeypatch.setenv("SPECOPS_ENGINE_THREADS", "1")
    monkeypatch.setattr("specops.runtime.data_check.BATCH_ROWS", 97)
    check(repo, tmp_path / "b")
    for s in ("train", "validation", "test"):
        assert (tmp_path / "a" / f"{s}.parquet").read_bytes() == (tmp_path / "b" / f"{s}.parquet").read_bytes()


def test_permutation_is_a_bijection_with_exact_counts():
    for n in (1, 2, 3, 17, 1000, 4177):
        perm = Permutation(n, seed=5)(np.arange(n, dtype=np.uint64))
        assert sorted(perm.tolist()) == list(range(n))
    assert split_counts(4177, {"train": 0.7, "validation": 0.15, "test": 0.15}) == \
        {"train": 2924, "validation": 627, "test": 626}
    a = Permutation(1000, 1)(np.arange(1000, dtype=np.uint64))
    b = Permutation(1000, 2)(np.arange(1000, dtype=np.uint64))
    assert (a != b).mean() > 0.9


def test_every_check_kind_reports_column_value_bound_and_rows(repo, tmp_path):
    (repo / "data" / "sexes.csv").write_text("code,label\nM,male\nF,female\n")
    checks = [
        {"type": "range", "column": "rings", "min": 3, "max": 20},
        {"type": "regex", "column": "sex", "pattern": "[MF]"},
        {"type": "mean", "column": "length", "max": 0.3},
        {"type": "quantile", "column": "rings", "q": 0.5, "min": 12},
        {"type": "unique", "columns": ["sex", "rings"]},
        {"type": "unique", "columns": ["sex", "length"]},
        {"type": "references", "column": "sex", "key": "code",
         "dataset": {"name": "sexes", "uri": "file://data/sexes.csv", "format": "csv"}},
        {"type": "schemaDrift"},
        {"type": "nullFraction", "column": "height", "max": 0.0},
    ]
    with pytest.raises(StepFailed) as ei:
        # Eight names for nine fields: the engine names the ninth itself.
        check(repo, tmp_path / "o", checks=checks, schema=SCHEMA[:-1])
    msg = str(ei.value)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    by_type = {r["type"]: r for r in report["checks"] if r["type"] != "schema"}
    # No 'rings' column is declared: checks on it say so.
    assert "range(rings): no column 'rings'" in msg
    assert by_type["regex"]["offending"] > 0 and "regex(sex): " in msg and "do not match '[MF]', e.g. 'I'" in msg
    assert msg.count("mean(length) = 0.") == 1 and "> 0.3" in msg
    assert "unique(sex, rings): no column 'rings'" in msg
    assert "references(sex): " in msg and "row(s) have no match in dataset 'sexes', e.g. 'I'" in msg
    assert "schemaDrift: column(s) not declared: 'column8'" in msg
    assert "unique(sex, length): " in msg and "duplicate value(s)" in msg
    assert by_type["nullFraction"]["passed"]
    assert not (tmp_path / "o" / "train.parquet").exists()


def test_bounds_pass_and_fail_with_observed_values(repo, tmp_path):
    ok = [{"type": "range", "column": "rings", "min": 1, "max": 29},
          {"type": "quantile", "column": "rings", "q": 0.5, "min": 8, "max": 12},
          {"type": "unique", "columns": ["sex", "length", "diameter", "whole_weight", "rings"]}]
    check(repo, tmp_path / "ok", checks=ok)
    with pytest.raises(StepFailed, match=r"range\(rings\): \d+ row\(s\) outside \[2, 25\] \(observed min 1, max \d+\)"):
        check(repo, tmp_path / "bad", checks=[{"type": "range", "column": "rings", "min": 2, "max": 25}])


def test_csv_options_delimiter_quote_and_encoding(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    text = "name;city;score\n'Zoë; the first';Köln;1\n'Ana';Lyon;2\n"
    (repo / "data" / "p.csv").write_bytes(text.encode("latin-1"))
    ds = {"name": "p", "uri": "data/p.csv", "csv": {"delimiter": ";", "quote": "'", "encoding": "latin-1"},
          "schema": [{"name": "name", "type": "string"}, {"name": "score", "type": "int"}],
          "splits": {"all": 1.0}, "checks": [{"type": "allowedValues", "column": "city", "values": ["Köln", "Lyon"]}]}
    run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(tmp_path / "o"), repo_root=str(repo))
    rows = pq.read_table(tmp_path / "o" / "all.parquet").to_pylist()
    assert rows == [{"name": "Zoë; the first", "city": "Köln", "score": 1}, {"name": "Ana", "city": "Lyon", "score": 2}]


def test_a_digest_that_differs_from_the_lock_is_refused_naming_both(repo, tmp_path):
    first = check(repo, tmp_path / "a")
    with open(repo / "data" / "abalone.csv", "a") as f:
        f.write("M,0.5,0.4,0.1,0.5,0.2,0.1,0.15,9\n")
    with pytest.raises(StepFailed) as ei:
        check(repo, tmp_path / "b", lock={"digest": first["digest"]})
    msg = str(ei.value)
    assert f"specops.lock pins {first['digest']}" in msg and "its digest is sha256:" in msg
    assert json.loads((tmp_path / "b" / "report.json").read_text())["passed"] is False


def test_parquet_and_jsonl_sources(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": list(range(50)), "v": [i / 2 for i in range(50)]}), repo / "data" / "x.parquet")
    (repo / "data" / "x.jsonl").write_text("".join(json.dumps({"id": i, "v": i / 2}) + "\n" for i in range(50)))
    for uri in ("data/x.parquet", "data/x.jsonl"):
        ds = {"name": "x", "uri": uri, "schema": [{"name": "id", "type": "int"}],
              "checks": [{"type": "unique", "column": "id"}, {"type": "mean", "column": "v", "min": 12, "max": 13}]}
        res = run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(tmp_path / uri), repo_root=str(repo))
        assert res["splits"] == {"train": 40, "test": 10}


def test_s3_source_on_moto_with_secret_reference_credentials(repo, tmp_path, monkeypatch):
    """S3 through boto3 against moto's server on 127.0.0.1; credentials come from the secret
    the Dataset references (an env var holding JSON), not from the step's params."""
    import boto3

    from tests.moto_server import aws_test_env, moto_server

    with aws_test_env(), moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="abalone.csv", Body=ABALONE.read_bytes())
        etag = s3.head_object(Bucket="data", Key="abalone.csv")["ETag"].strip('"')
        monkeypatch.setenv("ABALONE_AWS", json.dumps({"aws_access_key_id": "testing",
                                                      "aws_secret_access_key": "testing"}))
        cred = {"provider": "env", "name": "ABALONE_AWS"}
        res = check(repo, tmp_path / "o", uri="s3://data/abalone.csv", credentials=cred, lock={"etag": etag})
        assert res["rows"] == 4177 and res["digest"] == "sha256:" + __import__("hashlib").sha256(
            ABALONE.read_bytes()).hexdigest()
        with pytest.raises(StepFailed, match="its etag is .* but specops.lock pins 0000"):
            check(repo, tmp_path / "p", uri="s3://data/abalone.csv", credentials=cred, lock={"etag": "0000"})
        monkeypatch.setenv("ABALONE_AWS", "not json")
        with pytest.raises(ParamError, match="'ABALONE_AWS' must hold a JSON object") as ei:
            check(repo, tmp_path / "q", uri="s3://data/abalone.csv", credentials=cred)
        assert "not json" not in str(ei.value)
        monkeypatch.delenv("ABALONE_AWS")
        with pytest.raises(ParamError, match="'ABALONE_AWS', which is not set"):
            check(repo, tmp_path / "r", uri="s3://data/abalone.csv", credentials=cred)
        with pytest.raises(ParamError, match="cannot read 's3://data/missing.csv': NoSuchKey"):
            check(repo, tmp_path / "s", uri="s3://data/missing.csv")


def test_gcs_source_through_a_filesystem_double(repo, tmp_path, monkeypatch):
    """A test double: no GCS emulator runs here, so pyarrow's local filesystem stands in for
    GcsFileSystem (the same pyarrow.fs interface the runtime calls)."""
    from pyarrow import fs

    bucket = tmp_path / "gcs"
    (bucket / "b").mkdir(parents=True)
    (bucket / "b" / "abalone.csv").write_bytes(ABALONE.read_bytes())
    monkeypatch.setattr("specops.runtime.sources.gcs_filesystem",
                        lambda: fs.SubTreeFileSystem(str(bucket), fs.LocalFileSystem()))
    assert check(repo, tmp_path / "o", uri="gs://b/abalone.csv")["rows"] == 4177
    with pytest.raises(ParamError, match="cannot read 'gs://b/nope.csv'"):
        check(repo, tmp_path / "p", uri="gs://b/nope.csv")


def test_hf_dataset_from_the_local_hub_cache(tmp_path, monkeypatch):
    """The real huggingface_hub resolves a snapshot in a cache laid out as the Hub writes it;
    nothing is downloaded (HF_HUB_OFFLINE)."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = cache / "datasets--acme--tickets" / "snapshots" / commit / "data"
    snap.mkdir(parents=True)
    (cache / "datasets--acme--tickets" / "refs").mkdir()
    (cache / "datasets--acme--tickets" / "refs" / "main").write_text(commit)
    pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(20)], "response": [f"a{i}" for i in range(20)]}),
                   snap / "train-00000.parquet")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    ds = {"name": "tickets", "uri": "hf://datasets/acme/tickets", "version": "main", "format": "hf"}
    res = run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(tmp_path / "o"), repo_root=str(tmp_path))
    assert res["rows"] == 20 and res["digest"] == f"hf-commit:{commit}"
    with pytest.raises(ParamError, match="not in the local Hugging Face cache"):
        run_step("data_check", {"dataset": {**ds, "uri": "hf://datasets/acme/other"}}, inputs={},
                 output_dir=str(tmp_path / "p"), repo_root=str(tmp_path))


def test_spec_values_stay_data_not_sql(tmp_path):
    """Column names and check values with SQL in them are identifiers and parameters."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "x.csv").write_text('"a""; DROP TABLE src; --",b\n1,x\n2,y\n')
    name = 'a"; DROP TABLE src; --'
    ds = {"name": "x", "uri": "data/x.csv", "schema": [{"name": name, "type": "int"}], "splits": {"all": 1.0},
          "checks": [{"type": "allowedValues", "column": "b", "values": ["x', 'y"]},
                     {"type": "range", "column": name, "min": 1, "max": 2}]}
    with pytest.raises(StepFailed, match=r"allowedValues\(b\): 2 value\(s\) not allowed in 2 row\(s\)"):
        run_step("data_check", {"dataset": ds}, inputs={}, output_dir=str(tmp_path / "o"), repo_root=str(repo))
    assert os.path.exists(repo / "data" / "x.csv")
