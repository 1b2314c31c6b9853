"""The columnar engine of the step runtime: DuckDB over Apache Arrow.

Why DuckDB (with Arrow as the exchange format) rather than Polars: its CSV reader takes every
option a Dataset declares (header on/off with given names, delimiter, quote, escape, and
encodings beyond UTF-8, which Polars does not read), it runs all checks of a dataset as one SQL
aggregate in a single streaming pass, it spills hash tables to disk under a set memory limit
(so `unique` over more keys than fit in memory still finishes), and it is one self-contained
wheel. Arrow record batches carry rows out of it in file order for the splits, and Parquet is
what the splits are written as.

Spec values never become SQL text: column names are quoted identifiers, and every literal
(allowed values, patterns, bounds) is a bound parameter.

Memory: the connection's `memory_limit` (default 1 GB, env `SPECOPS_ENGINE_MEMORY`) bounds
what DuckDB holds; beyond it, it spills to a temp folder. Batches stream through Python.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specops.runtime.errors import ParamError

# Declared column type -> DuckDB type.
SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN",
             "date": "DATE", "datetime": "TIMESTAMP"}
ENCODINGS = ("utf-8", "utf-16", "latin-1")
BATCH_ROWS = 1 << 16


@dataclass(frozen=True)
class CsvOptions:
    header: bool = True
    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    encoding: str = "utf-8"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(scratch: Path | None = None) -> Any:
    """A DuckDB connection. With `scratch`, a database file there holds staged tables on disk
    and spills go there too; without, an in-memory database."""
    import duckdb

    config = {"memory_limit": os.environ.get("SPECOPS_ENGINE_MEMORY", "1GB"),
              # Results come out in the order rows were read: splits depend on it.
              "preserve_insertion_order": True}
    threads = os.environ.get("SPECOPS_ENGINE_THREADS")
    if threads:
        config["threads"] = int(threads)
    con = duckdb.connect(str(scratch / "stage.duckdb") if scratch is not None else ":memory:", config=config)
    if scratch is not None:
        con.execute("SET temp_directory = ?", [str(scratch / "spill")])
    return con


def stage(con: Any, rel: Any, fmt: str, name: str = "src") -> None:
    """Make `name` the rows of `rel`. Text formats are parsed once into a table on disk (in file
    order), which the checks and the splits then scan; parsing CSV twice costs more than
    writing DuckDB's columnar pages once. Parquet is scanned where it lies."""
    if fmt == "parquet":
        con.register(name, rel)
        return
    con.register(f"{name}_read", rel)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_read")
    con.unregister(f"{name}_read")


def read(con: Any, paths: list[Path], fmt: str, *, csv: CsvOptions | None = None,
         declared: dict[str, str] | None = None, names: list[str] | None = None, where: str) -> Any:
    """A DuckDB relation over the files. Declared CSV columns are read as text, so a value of
    the wrong type is counted by the checks rather than failing the read; other columns keep
    the types DuckDB infers."""
    import duckdb

    files = [str(p) for p in paths]
    try:
        if fmt == "csv":
            o = csv or CsvOptions()
            # SQL with bound parameters: the Python read_csv does not pass every encoding on.
            args = {"header": o.header, "delim": o.delimiter, "quote": o.quote, "encoding": o.encoding}
            if o.escape is not None:
                args["escape"] = o.escape
            if names:
                args["names"] = list(names)
            rel = _read_csv(con, files, args)
            present = [c for c in rel.columns if c in (declared or {})]
            if present:  # the header is sniffed first: DuckDB refuses types for absent columns
                rel = _read_csv(con, files, {**args, "types": {c: "VARCHAR" for c in present}})
        elif fmt in ("jsonl", "json"):
            rel = con.read_json(files if len(files) > 1 else files[0],
                                format="newline_delimited" if fmt == "jsonl" else "auto")
        elif fmt == "parquet":
            rel = con.read_parquet(files if len(files) > 1 else files[0])
        else:
            raise ParamError(f"{where}: unknown format {fmt!r} (expected csv, jsonl, json or parquet)")
    except duckdb.Error as e:
        raise ParamError(f"{where}: cannot read the {fmt} data: {first_line(e)}") from None
    return rel


def _read_csv(con: Any, files: list[str], args: dict[str, Any]) -> Any:
    names = list(args)
    sql = "FROM read_csv($1, " + ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(names)) + ")"
    return con.sql(sql, params=[files if len(files) > 1 else files[0]] + [args[k] for k in names])


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def our_type(duck_type: str) -> str:
    """A DuckDB type as a column type of the spec language."""
    t = duck_type.upper()
    if t in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER",
             "USMALLINT", "UTINYINT"):
        return "int"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "float"
    if t == "BOOLEAN":
        return "bool"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "datetime"
    return "string"


def typed_expr(col: str, duck_type: str, typ: str) -> str:
    """SQL for the column's values as `typ` (NULL where a value does not fit)."""
    c = quote_ident(col)
    text = duck_type.upper() == "VARCHAR"
    if typ == "string":
        return f"CAST({c} AS VARCHAR)"
    if typ == "int":
        if text:
            # TRY_CAST('1.5' AS BIGINT) rounds; an int column holds digits only.
            return f"CASE WHEN regexp_full_match(trim({c}), '[+-]?[0-9]+') THEN TRY_CAST(trim({c}) AS BIGINT) END"
        if our_type(duck_type) == "float":
            return f"CASE WHEN {c} = floor({c}) THEN TRY_CAST({c} AS BIGINT) END"
        return f"TRY_CAST({c} AS BIGINT)"
    if typ == "float":
        return f"CASE WHEN isfinite(TRY_CAST({c} AS DOUBLE)) THEN TRY_CAST({c} AS DOUBLE) END"
    if typ == "bool":
        return f"TRY_CAST({c} AS BOOLEAN)"
    if typ == "date":
        return f"COALESCE(TRY_CAST({c} AS DATE), CAST(TRY_CAST({c} AS TIMESTAMP) AS DATE))"
    if typ == "datetime":
        return f"TRY_CAST({c} AS TIMESTAMP)"
    raise AssertionError(typ)  # pragma: no cover - types are checked first


def typed_select(columns: list[str], duck_types: list[str], declared: dict[str, str]) -> str:
    """The select list that gives every declared column its type and keeps the rest."""
    parts = []
    for col, dt in zip(columns, duck_types):
        if col in declared:
            parts.append(f"{typed_expr(col, dt, declared[col])} AS {quote_ident(col)}")
        else:
            parts.append(quote_ident(col))
    return ", ".join(parts)
