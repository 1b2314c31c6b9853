"""Step `data_check`: read a dataset, check its schema and data checks, write seeded splits.

Params::

    {"dataset": {
        "name": "abalone",                    # required
        "uri": "file://data/abalone.csv",     # required: file:// or plain path (repo-relative),
                                              #   s3://, gs://, hf://datasets/<org>/<name> (see sources.py)
        "format": "csv",                      # csv | jsonl | json | parquet | hf (default: the uri's suffix)
        "version": "v3",                      # optional label (the revision for hf://)
        "csv": {"header": false, "delimiter": ",", "quote": "\"", "escape": null,
                "encoding": "utf-8"},         # optional CSV options (these are the defaults,
                                              #   but header true); header false names the
                                              #   columns after the schema, in order
        "schema": [{"name": "rings", "type": "int", "nullable": false}, ...],
                                              # optional; types in tables.TYPES, nullable default true
        "splits": {"train": 0.8, "test": 0.2},  # default; names [a-z][a-z0-9_-]*, fractions > 0, sum 1
        "checks": [...],                      # optional, see checksql.CHECK_KEYS; all run in one pass
        "credentials": {"provider": "env", "name": "DATA_AWS"},   # optional secret *reference*
        "lock": {"digest": "sha256:…"},       # optional pin from specops.lock: the data must match
        "input": {"name": "source", "path": "transformed/data.csv"},
                                              # optional, instead of `uri`: a file inside an
                                              #   upstream step's output (a Dataset producedBy a
                                              #   step of the same pipeline); `uri` is then ignored
        "seed": 0}}                           # split seed (default 0)

Checks: rowCount {min,max}; nullFraction {column,max}; allowedValues {column,values};
unique {column} or {columns: [..]} (a composite key); freshness {column,maxAgeDays,asOf};
range {column,min,max}; regex {column,pattern} (the whole value must match, RE2 syntax);
mean {column,min,max}; quantile {column,q,min,max}; references {column, dataset: <a dataset
param like this one>, key} (every value appears in the other dataset's `key` column, default
the same name); schemaDrift {} (the file's columns are exactly the declared ones).

Inputs: none, or the one `input` names. Output: `<split>.parquet` per split (typed by the schema, original order within a
split), `dataset.json` (the manifest later steps read, see tables.py) and `report.json`
({dataset, version, uri, format, digest, sha256, rows, columns, splits: {name: rows},
checks: [...], passed}). Returns {dataset, version, rows, sha256, digest, splits, passed}.

A digest differing from the lock's, or a failed schema or data check, raises StepFailed
naming every failure, after writing report.json (so the report survives for CI to show).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.runtime import write_json
from specops.runtime.checksql import Query, compile_check, shape
from specops.runtime.common import Params, fmt_num, require_input
from specops.runtime.engine import (
    BATCH_ROWS,
    ENCODINGS,
    CsvOptions,
    connect,
    first_line,
    our_type,
    read,
    stage,
    typed_expr,
    typed_select,
)
from specops.runtime.errors import ParamError, StepFailed
from specops.runtime.sources import materialize
from specops.runtime.splits import Permutation, assign, split_counts
from specops.runtime.tables import FORMATS, a_type, canonical_type

DATASET_KEYS = ("name", "uri", "format", "version", "schema", "splits", "checks", "seed", "csv",
                "credentials", "lock", "pii", "license", "labels", "input")
SOURCE_KEYS = ("name", "uri", "format", "version", "schema", "csv", "credentials")
CSV_KEYS = ("header", "delimiter", "quote", "escape", "encoding")
LOCK_KEYS = ("digest", "etag", "versionId", "generation", "commit")
_SPLIT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    top = Params(params, "data_check", ["dataset"])
    d = Params(top.dict("dataset"), "data_check: dataset", DATASET_KEYS)
    read_root = repo_root
    upstream = d.dict("input", None)
    if upstream is not None:
        # The data is a file of an upstream step's output: read it there, never outside it.
        u = Params(upstream, "data_check: dataset.input", ("name", "path"))
        read_root = require_input(inputs, u.str("name"), "data_check")
        d = Params({**d.p, "uri": "file://" + u.str("path")}, d.where, DATASET_KEYS)
    source = _source(d)
    name, uri, fmt, version = source["name"], source["uri"], source["format"], source["version"]
    seed = d.int("seed", 0, minimum=0)
    splits = _splits(d.dict("splits", {"train": 0.8, "test": 0.2}))
    checks = d.list("checks", [])
    for i, c in enumerate(checks):
        shape(c, i)
        if c["type"] == "references":
            _source(Params(c["dataset"], f"data_check: dataset.checks[{i}].dataset", SOURCE_KEYS))
    lock = Params(d.dict("lock", {}), "data_check: dataset.lock", LOCK_KEYS).p
    # What the data holds and may be used for: recorded in dataset.json and the report.
    labels = {"pii": Params(d.dict("pii", {}), "data_check: dataset.pii", ("contains", "columns")).p,
              "license": d.str("license", None), "labels": d.dict("labels", {})}
    labels = {k: v for k, v in labels.items() if v}

    where = f"data_check: dataset {name!r}"
    report: dict[str, Any] = {"dataset": name, "version": version, "uri": uri, "format": fmt, **labels}
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(materialize(uri, read_root, what=where, version=version,
                                              credentials=source["credentials"], scratch=out))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".engine-", dir=out)))
        con = connect(scratch)
        stack.callback(con.close)
        rel = _relation(con, src.paths, src.format or fmt, source, where)
        columns, duck_types = list(rel.columns), [str(t) for t in rel.types]
        _stage(con, rel, src.format or fmt, where)
        declared = {c["name"]: c["type"] for c in source["schema"] if c["name"] in columns}
        q = Query({c: (dt, declared.get(c) or our_type(dt)) for c, dt in zip(columns, duck_types)})
        readers = _schema_checks(q, source["schema"])
        for i, c in enumerate(checks):
            ref = None
            if c["type"] == "references":
                ref = _reference(stack, con, c, i, repo_root, out)
            if c["type"] == "schemaDrift":
                c = {**c, "_declared": [col["name"] for col in source["schema"]]}
            readers.append(compile_check(q, c, i, ref))
        rows_at = q.add("count(*)")
        row = _execute(con, q, where)
        # The digest was computed alongside the read; data that is not what the lock pins is
        # refused before any split is written.
        report["digest"] = src.digest
        report["sha256"] = src.digest.split(":", 1)[1] if src.digest.startswith("sha256:") else None
        stale = _stale_lock(lock, src.digest, src.pin)
        if stale:
            report.update(rows=None, columns=None, splits={}, checks=[], passed=False)
            write_json(out / "report.json", report)
            raise StepFailed(f"data check failed for dataset {name!r}: {stale}"
                             f" (run `specops lock` if the change is intended)")
        results = [r(row) for r in readers]
        n = row[rows_at]
        passed = all(r["passed"] for r in results)
        counts: dict[str, int] = {}
        if passed:
            counts = _write_splits(con, columns, duck_types, declared, n, splits, seed, out, where)
            schema = [{"name": c, "type": declared.get(c) or our_type(dt),
                       "nullable": next((s["nullable"] for s in source["schema"] if s["name"] == c), True)}
                      for c, dt in zip(columns, duck_types)]
            write_json(out / "dataset.json", {
                "name": name, "version": version, "format": "parquet", "schema": schema,
                "splits": {s: f"{s}.parquet" for s in splits}, **labels,
            })
    report.update(rows=n, columns=columns, splits=counts, checks=results, passed=passed)
    write_json(out / "report.json", report)
    if not passed:
        failed = [r["message"] for r in results if not r["passed"]]
        raise StepFailed(f"data check failed for dataset {name!r}: " + "; ".join(failed))
    return {"dataset": name, "version": version, "rows": n, "sha256": report["sha256"],
            "digest": src.digest, "splits": counts, "passed": True}


# ---- params --------------------------------------------------------------------------------


def _source(d: Params) -> dict[str, Any]:
    """Name, uri, format, version, CSV options, schema and credentials reference of a dataset."""
    uri = d.str("uri")
    fmt = d.str("format", _suffix_format(uri), choices=FORMATS)
    if fmt is None:
        raise d.error("format", f"is required (cannot tell it from {uri!r})")
    version = d.raw("version", None)
    cred = d.dict("credentials", None)
    if cred is not None:
        Params(cred, f"{d.where}.credentials", ("provider", "name", "key"))
    return {"name": d.str("name"), "uri": uri, "format": fmt,
            "version": None if version is None else str(version),
            "csv": _csv(Params(d.dict("csv", {}), f"{d.where}.csv", CSV_KEYS)),
            "schema": _schema(d.list("schema", [])), "credentials": cred}


def _csv(p: Params) -> CsvOptions:
    header = p.raw("header", True)
    if not isinstance(header, bool):
        raise p.error("header", f"must be true or false, got {header!r}")
    chars = {}
    for key, default in (("delimiter", ","), ("quote", '"'), ("escape", None)):
        v = p.str(key, default)
        if v is not None and len(v) != 1:
            raise p.error(key, f"must be one character, got {v!r}")
        chars[key] = v
    return CsvOptions(header=header, encoding=p.str("encoding", "utf-8", choices=ENCODINGS), **chars)


def _suffix_format(uri: str) -> str | None:
    if uri.startswith("hf://"):
        return "hf"
    suffix = uri.rsplit(".", 1)[-1].lower() if "." in uri.rsplit("/", 1)[-1] else ""
    return {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "json": "json", "parquet": "parquet"}.get(suffix)


def _schema(cols: list) -> list[dict[str, Any]]:
    out = []
    seen = set()
    for i, c in enumerate(cols):
        p = Params(c, f"data_check: dataset.schema[{i}]", ("name", "type", "nullable"))
        name = p.str("name")
        if name in seen:
            raise p.error("name", f"repeats column {name!r}")
        seen.add(name)
        nullable = p.raw("nullable", True)
        if not isinstance(nullable, bool):
            raise p.error("nullable", f"must be true or false, got {nullable!r}")
        out.append({"name": name, "type": canonical_type(p.str("type"), p.where), "nullable": nullable})
    return out


def _splits(splits: dict) -> dict[str, float]:
    if not splits:
        raise ParamError("data_check: dataset.splits must name at least one split")
    out = {}
    for name, frac in splits.items():
        if not isinstance(name, str) or not _SPLIT_NAME.fullmatch(name):
            raise ParamError(f"data_check: split name {name!r} must match [a-z][a-z0-9_-]*")
        if name in ("dataset", "report", "result"):
            raise ParamError(f"data_check: split name {name!r} is reserved")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ParamError(f"data_check: split {name!r} fraction must be in (0, 1], got {frac!r}")
        out[name] = float(frac)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ParamError(f"data_check: split fractions must sum to 1, got {fmt_num(sum(out.values()))}")
    return out


def _stale_lock(lock: dict, digest: str, pin: dict[str, str]) -> str | None:
    """Why the data differs from its lock entry, or None when it matches (or is not locked)."""
    seen = {"digest": digest, **pin}
    for key in LOCK_KEYS:
        want = lock.get(key)
        if want is not None and key in seen and str(want) != seen[key]:
            return f"its {key} is {seen[key]} but specops.lock pins {want}"
    return None


# ---- reading and checking ------------------------------------------------------------------


def _relation(con: Any, paths: list[Path], fmt: str, source: dict, where: str) -> Any:
    declared = {c["name"]: c["type"] for c in source["schema"]}
    opts: CsvOptions = source["csv"]
    names = None
    if fmt == "csv" and not opts.header:
        if not declared:
            raise ParamError(f"{where}: a CSV without a header row needs its columns declared, in order")
        names = list(declared)
    return read(con, paths, fmt, csv=opts, declared=declared if fmt == "csv" else None, names=names, where=where)


def _stage(con: Any, rel: Any, fmt: str, where: str) -> None:
    import duckdb

    try:
        stage(con, rel, fmt)
    except duckdb.Error as e:  # a malformed row deep in the file
        raise ParamError(f"{where}: cannot read the {fmt} data: {first_line(e)}") from None


def _reference(stack: contextlib.ExitStack, con: Any, c: dict, i: int, repo_root: Path, out: Path) -> str:
    """Register the other dataset as `ref<i>_src`; returns a subquery of its typed keys `k`."""
    ref = _source(Params(c["dataset"], f"data_check: dataset.checks[{i}].dataset", SOURCE_KEYS))
    where = f"data_check: dataset.checks[{i}] (references {ref['name']!r})"
    src = stack.enter_context(materialize(ref["uri"], repo_root, what=where, version=ref["version"],
                                          credentials=ref["credentials"], scratch=out))
    rel = _relation(con, src.paths, src.format or ref["format"], ref, where)
    key = c.get("key") or c["column"]
    if key not in rel.columns:
        raise ParamError(f"{where}: dataset {ref['name']!r} has no column {key!r}{suggestion(key, rel.columns)}")
    con.register(f"ref{i}_src", rel)
    dt = str(rel.types[list(rel.columns).index(key)])
    typ = next((s["type"] for s in ref["schema"] if s["name"] == key), None) or our_type(dt)
    return f"(SELECT {typed_expr(key, dt, typ)} AS k FROM ref{i}_src) t{i}"


def _schema_checks(q: Query, schema: list[dict]) -> list:
    readers = []
    for col in schema:
        name, typ = col["name"], col["type"]
        res = {"type": "schema", "column": name}
        if name not in q.columns:
            msg = f"column {name!r} is missing{suggestion(name, q.names)}"
            readers.append(lambda row, res=res, msg=msg: {**res, "passed": False, "message": msg})
            continue
        r, v = q.r(name), q.v(name)
        bad = q.add(f"count_if({r} IS NOT NULL AND {v} IS NULL)")
        example = q.add(f"min(CAST({r} AS VARCHAR)) FILTER (WHERE {r} IS NOT NULL AND {v} IS NULL)")
        nulls = q.add(f"count_if({r} IS NULL)")

        def reader(row: tuple, res=res, name=name, typ=typ, nullable=col["nullable"],
                   bad=bad, example=example, nulls=nulls) -> dict:
            if row[bad]:
                return {**res, "passed": False, "offending": row[bad],
                        "message": f"column {name!r}: {row[bad]} row(s) are not {a_type(typ)},"
                                   f" e.g. {row[example]!r}"}
            if not nullable and row[nulls]:
                return {**res, "passed": False, "offending": row[nulls],
                        "message": f"column {name!r} is not nullable but has {row[nulls]} null(s)"}
            return {**res, "passed": True, "message": f"column {name!r} is {typ}"}
        readers.append(reader)
    return readers


def _execute(con: Any, q: Query, where: str) -> tuple:
    import duckdb

    try:
        return con.execute(q.sql("src"), q.params).fetchall()[0]
    except duckdb.Error as e:
        raise ParamError(f"{where}: {first_line(e)}") from None


# ---- splits --------------------------------------------------------------------------------


def _write_splits(con: Any, columns: list[str], duck_types: list[str], declared: dict[str, str], n: int,
                  fractions: dict[str, float], seed: int, out: Path, where: str) -> dict[str, int]:
    """Stream typed rows in file order; each goes to the split its permuted position falls in."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    counts = split_counts(n, fractions)
    bounds = np.cumsum([counts[s] for s in fractions])
    perm = Permutation(n, seed)
    names = list(fractions)
    sql = f"SELECT {typed_select(columns, duck_types, declared)} FROM src" if columns else "SELECT * FROM src"
    writers: dict[str, _SplitWriter] = {}
    try:
        reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        writers = {s: _SplitWriter(out / f"{s}.parquet", reader.schema) for s in names}
        start = 0
        for batch in reader:
            which = assign(perm, start, batch.num_rows, bounds)
            for k, s in enumerate(names):
                mask = which == k
                if mask.any():
                    writers[s].add(batch.filter(pa.array(mask)))
            start += batch.num_rows
        for w in writers.values():
            w.finish()
    except duckdb.Error as e:
        raise ParamError(f"{where}: {first_line(e)}") from None
    finally:
        for w in writers.values():
            w.close()
    return counts


class _SplitWriter:
    """Parquet row groups of exactly ROW_GROUP rows, whatever batches the engine hands over, so
    a split's bytes depend on its rows alone (not on threads or batch sizes). Holds at most one
    row group of rows."""

    ROW_GROUP = 1 << 17

    def __init__(self, path: Path, schema: Any):
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(path, schema)
        self.schema = schema
        self.pending: list = []
        self.rows = 0

    def add(self, batch: Any) -> None:
        self.pending.append(batch)
        self.rows += batch.num_rows
        while self.rows >= self.ROW_GROUP:
            self._flush(self.ROW_GROUP)

    def _flush(self, n: int) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(self.pending, schema=self.schema).combine_chunks()
        self.writer.write_table(table.slice(0, n), row_group_size=n)
        rest = table.slice(n)
        self.pending, self.rows = rest.to_batches(), rest.num_rows

    def finish(self) -> None:
        if self.rows:
            self._flush(self.rows)

    def close(self) -> None:
        self.writer.close()
