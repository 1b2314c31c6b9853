"""Step `data_check`: read a dataset, check schema and data checks, write seeded splits.

Params::

    {"dataset": {
        "name": "churn",                      # required
        "uri": "file://data/churn.csv",       # required: file:// or plain path (repo-relative),
                                              #   s3:// gs:// … through fsspec when installed
        "format": "csv",                      # csv | jsonl | parquet (default: the uri's suffix)
        "version": "v3",                      # optional label, recorded in the report
        "schema": [{"name": "tenure_months", "type": "int", "nullable": false}, ...],
                                              # optional; types in tables.TYPES, nullable default true
        "splits": {"train": 0.8, "test": 0.2},  # default; names [a-z][a-z0-9_-]*, fractions > 0, sum 1
        "checks": [                           # optional, run on the whole file before splitting
            {"type": "rowCount", "min": 100, "max": 100000},      # min and/or max
            {"type": "nullFraction", "column": "x", "max": 0.05},
            {"type": "allowedValues", "column": "contract", "values": ["one-year", ...]},
            {"type": "unique", "column": "customer_id"},
            {"type": "freshness", "column": "updated_at", "maxAgeDays": 7,
             "asOf": "2026-11-01"},           # asOf optional (default: now, UTC) for reproducible runs
        ],
        "seed": 0}}                           # split shuffle seed (default 0)

Inputs: none. Output: `<split>.<format>` per split (rows copied as read, original order within
a split), `dataset.json` (the manifest later steps read, see tables.py) and `report.json`
({dataset, version, uri, format, sha256, rows, columns, splits: {name: rows}, checks: [...],
passed}). Returns {dataset, version, rows, sha256, splits, passed}.

A failed schema or data check raises StepFailed naming every failure, after writing
report.json (so the report survives for CI to show).
"""

from __future__ import annotations

import hashlib
import io
import random
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.runtime import write_json
from specops.runtime.common import Params, fmt_num, open_uri
from specops.runtime.errors import ParamError, StepFailed
from specops.runtime.tables import (
    FORMATS,
    BadValue,
    a_type,
    canonical_type,
    coerce_value,
    read_table,
    to_utc,
    write_table,
)

DATASET_KEYS = ("name", "uri", "format", "version", "schema", "splits", "checks", "seed")
CHECK_KEYS = {
    "rowCount": ("min", "max"),
    "nullFraction": ("column", "max"),
    "allowedValues": ("column", "values"),
    "unique": ("column",),
    "freshness": ("column", "maxAgeDays", "asOf"),
}
_SPLIT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def run(params: dict, inputs: dict[str, Path], out: Path, repo_root: Path) -> dict:
    top = Params(params, "data_check", ["dataset"])
    d = Params(top.dict("dataset"), "data_check: dataset", DATASET_KEYS)
    name = d.str("name")
    uri = d.str("uri")
    fmt = d.str("format", _suffix_format(uri), choices=FORMATS)
    if fmt is None:
        raise d.error("format", f"is required (cannot tell it from {uri!r})")
    version = d.raw("version", None)
    version = None if version is None else str(version)
    seed = d.int("seed", 0, minimum=0)
    schema = _schema(d.list("schema", []))
    splits = _splits(d.dict("splits", {"train": 0.8, "test": 0.2}))
    checks = d.list("checks", [])
    for i, c in enumerate(checks):
        _check_shape(c, i)

    where = f"data_check: dataset {name!r}"
    with open_uri(uri, repo_root, what=where) as f:
        data = f.read()
    columns, raw = read_table(io.BytesIO(data), fmt, where)
    digest = hashlib.sha256(data).hexdigest()

    results: list[dict[str, Any]] = []
    typed = _check_schema(schema, columns, raw, results)
    for i, c in enumerate(checks):
        results.append(_run_check(c, i, columns, raw, typed))

    passed = all(r["passed"] for r in results)
    counts: dict[str, int] = {}
    if passed:
        for split, idx in _split_indices(len(raw), splits, seed).items():
            write_table(out / f"{split}.{fmt}", fmt, columns, [raw[i] for i in idx])
            counts[split] = len(idx)
        write_json(out / "dataset.json", {
            "name": name, "version": version, "format": fmt, "schema": schema or None,
            "splits": {s: f"{s}.{fmt}" for s in splits},
        })
    report = {
        "dataset": name, "version": version, "uri": uri, "format": fmt, "sha256": digest,
        "rows": len(raw), "columns": columns, "splits": counts, "checks": results, "passed": passed,
    }
    write_json(out / "report.json", report)
    if not passed:
        failed = [r["message"] for r in results if not r["passed"]]
        raise StepFailed(f"data check failed for dataset {name!r}: " + "; ".join(failed))
    return {"dataset": name, "version": version, "rows": len(raw), "sha256": digest,
            "splits": counts, "passed": True}


def _suffix_format(uri: str) -> str | None:
    suffix = uri.rsplit(".", 1)[-1].lower() if "." in uri.rsplit("/", 1)[-1] else ""
    return {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet"}.get(suffix)


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
        if name == "dataset" or name == "report" or name == "result":
            raise ParamError(f"data_check: split name {name!r} is reserved")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ParamError(f"data_check: split {name!r} fraction must be in (0, 1], got {frac!r}")
        out[name] = float(frac)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ParamError(f"data_check: split fractions must sum to 1, got {fmt_num(sum(out.values()))}")
    return out


def _split_indices(n: int, splits: dict[str, float], seed: int) -> dict[str, list[int]]:
    """Seeded shuffle, then largest-remainder allocation so the counts sum to n exactly."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    exact = [(name, frac * n) for name, frac in splits.items()]
    counts = {name: int(x) for name, x in exact}
    rest = n - sum(counts.values())
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - int(exact[i][1])), i))
    for i in by_remainder[:rest]:
        counts[exact[i][0]] += 1
    out, start = {}, 0
    for name in splits:
        out[name] = sorted(order[start:start + counts[name]])
        start += counts[name]
    return out


def _check_shape(c: Any, i: int) -> None:
    where = f"data_check: dataset.checks[{i}]"
    if not isinstance(c, dict) or not isinstance(c.get("type"), str):
        raise ParamError(f"{where}: expected a mapping with a 'type'")
    t = c["type"]
    if t not in CHECK_KEYS:

        raise ParamError(f"{where}: unknown check type {t!r} (expected one of {', '.join(CHECK_KEYS)})"
                         f"{suggestion(t, CHECK_KEYS)}")
    p = Params(c, f"{where} ({t})", ("type",) + CHECK_KEYS[t])
    if t == "rowCount":
        lo, hi = p.int("min", None, minimum=0), p.int("max", None, minimum=0)
        if lo is None and hi is None:
            raise ParamError(f"{p.where}: needs 'min' and/or 'max'")
    elif t == "nullFraction":
        p.str("column")
        if not 0 <= p.float("max") <= 1:
            raise p.error("max", "must be between 0 and 1")
    elif t == "allowedValues":
        p.str("column")
        if not p.list("values"):
            raise p.error("values", "must not be empty")
    elif t == "unique":
        p.str("column")
    elif t == "freshness":
        p.str("column")
        p.float("maxAgeDays", minimum=0)
        as_of = p.str("asOf", None)
        if as_of is not None:
            try:
                datetime.fromisoformat(as_of)
            except ValueError:
                raise p.error("asOf", f"must be an ISO-8601 date or datetime, got {as_of!r}") from None


def _check_schema(schema: list[dict], columns: list[str], raw: list[dict], results: list) -> dict[str, list]:
    """Typed column values for every column (schema type, or raw strings when undeclared)."""
    typed: dict[str, list] = {}
    for col in schema:
        name, typ = col["name"], col["type"]
        if name not in columns:

            results.append({"type": "schema", "column": name, "passed": False,
                            "message": f"column {name!r} is missing{suggestion(name, columns)}"})
            continue
        values, bad = [], None
        for i, r in enumerate(raw):
            try:
                values.append(coerce_value(r.get(name), typ))
            except BadValue:
                values.append(None)
                if bad is None:
                    bad = (i + 1, r.get(name))
        nulls = sum(v is None for v in values) - (0 if bad is None else 1)
        if bad is not None:
            results.append({"type": "schema", "column": name, "passed": False,
                            "message": f"column {name!r} row {bad[0]}: {bad[1]!r} is not {a_type(typ)}"})
            # Later checks on this column see the values as written, not the failed coercion.
            values = [None if r.get(name) in (None, "") else r.get(name) for r in raw]
        elif not col["nullable"] and nulls:
            results.append({"type": "schema", "column": name, "passed": False,
                            "message": f"column {name!r} is not nullable but has {nulls} null(s)"})
        else:
            results.append({"type": "schema", "column": name, "passed": True,
                            "message": f"column {name!r} is {typ}"})
        typed[name] = values
    for name in columns:
        if name not in typed:
            typed[name] = [None if r.get(name) in (None, "") else r.get(name) for r in raw]
    return typed


def _run_check(c: dict, i: int, columns: list[str], raw: list[dict], typed: dict[str, list]) -> dict:
    t = c["type"]
    res: dict[str, Any] = {"type": t, "index": i}
    n = len(raw)
    if t == "rowCount":
        lo, hi = c.get("min"), c.get("max")
        res["observed"] = n
        if lo is not None and n < lo:
            return _fail(res, f"rowCount = {n} < {lo}")
        if hi is not None and n > hi:
            return _fail(res, f"rowCount = {n} > {hi}")
        return _ok(res, f"rowCount = {n}")

    col = c["column"]
    res["column"] = col
    if col not in typed:

        return _fail(res, f"{t}({col}): no column {col!r}{suggestion(col, columns)}")
    values = typed[col]
    if t == "nullFraction":
        frac = (sum(v is None for v in values) / n) if n else 0.0
        res["observed"] = round(frac, 6)
        if frac > c["max"]:
            return _fail(res, f"nullFraction({col}) = {fmt_num(frac)} > {fmt_num(c['max'])}")
        return _ok(res, f"nullFraction({col}) = {fmt_num(frac)}")
    if t == "allowedValues":
        allowed = c["values"]
        allowed_str = {_canon(v) for v in allowed}
        bad = sorted({_canon(v) for v in values if v is not None and v not in allowed
                      and _canon(v) not in allowed_str})
        res["observed"] = bad[:20]
        if bad:
            shown = ", ".join(repr(b) for b in bad[:5]) + (", …" if len(bad) > 5 else "")
            return _fail(res, f"allowedValues({col}): {len(bad)} value(s) not allowed: {shown}")
        return _ok(res, f"allowedValues({col}): all allowed")
    if t == "unique":
        present = [_canon(v) for v in values if v is not None]
        dupes = len(present) - len(set(present))
        res["observed"] = dupes
        if dupes:
            return _fail(res, f"unique({col}): {dupes} duplicate value(s)")
        return _ok(res, f"unique({col}): all unique")
    if t == "freshness":
        stamps = []
        for v in values:
            if v is None:
                continue
            try:
                stamps.append(to_utc(coerce_value(v, "datetime") if isinstance(v, str) else v))
            except (BadValue, TypeError, AttributeError):
                return _fail(res, f"freshness({col}): {v!r} is not a date or datetime")
        if not stamps:
            return _fail(res, f"freshness({col}): no dates")
        now = to_utc(datetime.fromisoformat(c["asOf"])) if c.get("asOf") else datetime.now(timezone.utc)
        age = (now - max(stamps)).total_seconds() / 86400
        res["observed"] = round(age, 3)
        if age > c["maxAgeDays"]:
            return _fail(res, f"freshness({col}): newest row is {fmt_num(age)} days old > {fmt_num(c['maxAgeDays'])}")
        return _ok(res, f"freshness({col}): newest row is {fmt_num(age)} days old")
    raise AssertionError(t)  # pragma: no cover - shapes are checked first


def _canon(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _ok(res: dict, msg: str) -> dict:
    return {**res, "passed": True, "message": msg}


def _fail(res: dict, msg: str) -> dict:
    return {**res, "passed": False, "message": msg}
