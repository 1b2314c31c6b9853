"""Tabular data for the step runtime: read, type, split files, and the dataset manifest.

A table is a list of column names plus a list of row dicts. Readers keep values as the file
holds them (CSV: strings; JSONL/Parquet: JSON types) so written splits are faithful copies;
`coerce` turns them into typed Python values for checks and training.

Column types (schema `type`): string, int, float, bool, date, datetime; accepted aliases:
str, category -> string; integer -> int; double, number -> float; boolean -> bool;
timestamp -> datetime. In CSV an empty cell is null.

The data_check step writes `dataset.json` next to its splits, and later steps read it::

    {"name": "churn", "version": "v3", "format": "csv",
     "schema": [{"name": "tenure_months", "type": "int", "nullable": false}, ...],
     "splits": {"train": "train.csv", "test": "test.csv"}}

Formats: csv (stdlib csv, UTF-8, header row), jsonl (one JSON object per line), parquet
(needs pyarrow, which is optional).
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any

from specops.diagnostics import suggestion
from specops.runtime.errors import ParamError

FORMATS = ("csv", "jsonl", "parquet")
TYPES = ("string", "int", "float", "bool", "date", "datetime")
TYPE_ALIASES = {
    "str": "string", "category": "string", "integer": "int", "double": "float",
    "number": "float", "boolean": "bool", "timestamp": "datetime",
}
NUMERIC = ("int", "float", "bool")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def a_type(t: str) -> str:
    """'an int', 'a float': the type with its article, for messages."""
    return f"an {t}" if t[0] in "aeiou" else f"a {t}"


def canonical_type(t: str, where: str) -> str:
    t2 = TYPE_ALIASES.get(t, t)
    if t2 not in TYPES:

        raise ParamError(f"{where}: unknown column type {t!r} (expected one of {', '.join(TYPES)})"
                         f"{suggestion(str(t), list(TYPES) + list(TYPE_ALIASES))}")
    return t2


# ---- reading and writing -----------------------------------------------------------------


def read_table(f: IO[bytes], fmt: str, where: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and raw rows of a file opened in binary mode."""
    if fmt == "csv":
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        columns = list(reader.fieldnames or [])
        if len(set(columns)) != len(columns):
            raise ParamError(f"{where}: duplicate column names in the CSV header")
        rows = []
        for i, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise ParamError(f"{where}: CSV line {i} has {'more' if None in row else 'fewer'}"
                                 f" fields than the header")
            rows.append(row)
        return columns, rows
    if fmt == "jsonl":
        columns: list[str] = []
        seen: set[str] = set()
        rows = []
        for i, line in enumerate(io.TextIOWrapper(f, encoding="utf-8"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ParamError(f"{where}: JSONL line {i} is not JSON: {e.msg}") from e
            if not isinstance(row, dict):
                raise ParamError(f"{where}: JSONL line {i} is not an object")
            for k in row:
                if k not in seen:
                    seen.add(k)
                    columns.append(k)
            rows.append(row)
        return columns, rows
    if fmt == "parquet":
        pq = _pyarrow_parquet(where)
        table = pq.read_table(io.BytesIO(f.read()))
        return list(table.column_names), table.to_pylist()
    raise ParamError(f"{where}: unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")


def write_table(path: Path, fmt: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    elif fmt == "parquet":
        pa = _pyarrow_parquet(str(path))
        import pyarrow

        pa.write_table(pyarrow.Table.from_pylist(rows), path)
    else:  # pragma: no cover - validated before
        raise ParamError(f"unknown format {fmt!r}")


def _pyarrow_parquet(where: str):
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ParamError(f"{where}: format 'parquet' needs pyarrow (pip install pyarrow)") from e
    return pq


# ---- typing ------------------------------------------------------------------------------


class BadValue(Exception):
    pass


def coerce_value(v: Any, typ: str) -> Any:
    """A raw cell as a typed Python value (None for null); BadValue when it does not fit."""
    if v is None or (isinstance(v, str) and v == ""):
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if typ == "string":
            return v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
        if typ == "int":
            if isinstance(v, bool):
                raise BadValue
            if isinstance(v, int):
                return v
            if isinstance(v, float):
                if v.is_integer():
                    return int(v)
                raise BadValue
            return int(str(v).strip())
        if typ == "float":
            if isinstance(v, bool):
                raise BadValue
            out = float(v) if isinstance(v, (int, float)) else float(str(v).strip())
            if not math.isfinite(out):
                raise BadValue
            return out
        if typ == "bool":
            if isinstance(v, bool):
                return v
            if isinstance(v, int) and v in (0, 1):
                return bool(v)
            s = str(v).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise BadValue
        if typ == "date":
            if isinstance(v, datetime):
                return v.date()
            if isinstance(v, date):
                return v
            s = str(v).strip()
            try:
                return date.fromisoformat(s)
            except ValueError:
                return datetime.fromisoformat(s).date()
        if typ == "datetime":
            if isinstance(v, datetime):
                return v
            if isinstance(v, date):
                return datetime(v.year, v.month, v.day)
            return datetime.fromisoformat(str(v).strip())
    except (ValueError, TypeError, OverflowError) as e:
        raise BadValue from e
    raise BadValue  # pragma: no cover


def infer_type(values: list[Any]) -> str:
    """The narrowest type all non-null raw values fit (int, float, bool, else string)."""
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return "string"
    for typ in ("int", "float"):
        try:
            for v in present:
                if isinstance(v, str) and typ == "int" and not v.strip().lstrip("+-").isdigit():
                    raise BadValue
                coerce_value(v, typ)
            return typ
        except BadValue:
            continue
    if all(isinstance(v, bool) for v in present):
        return "bool"
    return "string"


def to_utc(v: date | datetime) -> datetime:
    """A date or datetime as an aware UTC datetime (naive values are taken as UTC)."""
    if not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


# ---- dataset manifest and splits ----------------------------------------------------------


def read_manifest(data_dir: Path, where: str) -> dict[str, Any]:
    path = data_dir / "dataset.json"
    if not path.is_file():
        raise ParamError(f"{where}: input {data_dir.name!r} has no dataset.json"
                         f" (expected the output of a data_check step)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_split(data_dir: Path, split: str, where: str) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """Columns, typed rows and column types of one split written by data_check."""
    manifest = read_manifest(data_dir, where)
    files = manifest.get("splits", {})
    if split not in files:

        raise ParamError(f"{where}: the dataset has no split {split!r} (have: {', '.join(sorted(files))})"
                         f"{suggestion(split, files)}")
    with open(data_dir / files[split], "rb") as f:
        columns, raw = read_table(f, manifest["format"], where)
    types = {c["name"]: c["type"] for c in manifest.get("schema") or []}
    for c in columns:
        if c not in types:
            types[c] = infer_type([r.get(c) for r in raw])
    rows = []
    for i, r in enumerate(raw):
        row = {}
        for c in columns:
            try:
                row[c] = coerce_value(r.get(c), types[c])
            except BadValue:
                raise ParamError(f"{where}: split {split!r} row {i + 1} column {c!r}: {r.get(c)!r}"
                                 f" is not {a_type(types[c])}") from None
        rows.append(row)
    return columns, rows, types
