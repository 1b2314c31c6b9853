"""Data checks as one SQL aggregate: every check of a dataset in a single pass on the engine.

Each check adds aggregate expressions (with bound parameters) to one SELECT and reads its
answer back from the single result row. Referential checks add a LEFT JOIN against the other
dataset's distinct keys, which keeps one row per source row, so they ride in the same pass.

A failed check's result names the column, the value observed against its bound and the count
of offending rows: {"type", "index", "column", "passed", "observed", "offending", "message"}.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any, Callable

from specops.diagnostics import suggestion
from specops.runtime.common import Params, fmt_num
from specops.runtime.engine import quote_ident, typed_expr
from specops.runtime.errors import ParamError

CHECK_KEYS = {
    "rowCount": ("min", "max"),
    "nullFraction": ("column", "max"),
    "allowedValues": ("column", "values"),
    "unique": ("column", "columns"),
    "freshness": ("column", "maxAgeDays", "asOf"),
    "range": ("column", "min", "max"),
    "regex": ("column", "pattern"),
    "mean": ("column", "min", "max"),
    "quantile": ("column", "q", "min", "max"),
    "references": ("column", "dataset", "key"),
    "schemaDrift": (),
}
NUMERIC = ("int", "float")


class Query:
    """One aggregate SELECT under construction: expressions, parameters, joins."""

    def __init__(self, columns: dict[str, tuple[str, str]]):
        # column -> (DuckDB type as read, spec type it is checked as)
        self.columns = columns
        self.names = list(columns)
        self.exprs: list[str] = []
        self.params: list[Any] = []
        self.joins: list[str] = []
        self.used: set[int] = set()

    def v(self, col: str) -> str:
        """The typed value of a column inside the query."""
        i = self.names.index(col)
        self.used.add(i)
        return f"v{i}"

    def r(self, col: str) -> str:
        """The value as read."""
        i = self.names.index(col)
        self.used.add(i)
        return f"r{i}"

    def add(self, sql: str, *params: Any) -> int:
        """Add an aggregate; `?` marks each parameter in order. Returns its result index."""
        parts = sql.split("?")
        if len(parts) - 1 != len(params):  # pragma: no cover - programming error
            raise AssertionError(sql)
        out = parts[0]
        for p, rest in zip(params, parts[1:]):
            self.params.append(p)
            out += f"${len(self.params)}" + rest
        self.exprs.append(out)
        return len(self.exprs) - 1

    def sql(self, source: str) -> str:
        inner = ["1 AS one"]
        for i in sorted(self.used):
            col = self.names[i]
            duck, typ = self.columns[col]
            inner.append(f"{quote_ident(col)} AS r{i}")
            inner.append(f"{typed_expr(col, duck, typ)} AS v{i}")
        select = ", ".join(self.exprs) or "count(*)"
        return f"SELECT {select} FROM (SELECT {', '.join(inner)} FROM {source}) q " + " ".join(self.joins)


Reader = Callable[[tuple], dict]


def shape(c: Any, i: int) -> Params:
    """Check the shape of one check's params (before any data is read)."""
    where = f"data_check: dataset.checks[{i}]"
    if not isinstance(c, dict) or not isinstance(c.get("type"), str):
        raise ParamError(f"{where}: expected a mapping with a 'type'")
    t = c["type"]
    if t not in CHECK_KEYS:
        raise ParamError(f"{where}: unknown check type {t!r} (expected one of {', '.join(CHECK_KEYS)})"
                         f"{suggestion(t, CHECK_KEYS)}")
    p = Params(c, f"{where} ({t})", ("type",) + CHECK_KEYS[t])
    if t in ("rowCount",):
        lo, hi = p.int("min", None, minimum=0), p.int("max", None, minimum=0)
        if lo is None and hi is None:
            raise ParamError(f"{p.where}: needs 'min' and/or 'max'")
    elif t in ("range", "mean", "quantile"):
        p.str("column")
        if p.float("min", None) is None and p.float("max", None) is None:
            raise ParamError(f"{p.where}: needs 'min' and/or 'max'")
        if t == "quantile" and not 0 <= p.float("q") <= 1:
            raise p.error("q", "must be between 0 and 1")
    elif t == "nullFraction":
        p.str("column")
        if not 0 <= p.float("max") <= 1:
            raise p.error("max", "must be between 0 and 1")
    elif t == "allowedValues":
        p.str("column")
        if not p.list("values"):
            raise p.error("values", "must not be empty")
    elif t == "unique":
        cols = p.list("columns", None)
        if (p.str("column", None) is None) == (cols is None):
            raise ParamError(f"{p.where}: give 'column' or 'columns'")
        if cols is not None and (not cols or not all(isinstance(x, str) and x for x in cols)):
            raise p.error("columns", "must be a non-empty list of column names")
    elif t == "freshness":
        p.str("column")
        p.float("maxAgeDays", minimum=0)
        as_of = p.str("asOf", None)
        if as_of is not None:
            try:
                datetime.fromisoformat(as_of)
            except ValueError:
                raise p.error("asOf", f"must be an ISO-8601 date or datetime, got {as_of!r}") from None
    elif t == "regex":
        p.str("column")
        try:
            re.compile(p.str("pattern"))
        except re.error as e:
            raise p.error("pattern", f"is not a regular expression: {e}") from None
    elif t == "references":
        p.str("column")
        p.dict("dataset")
        p.str("key", None)
    return p


def compile_check(q: Query, c: dict, i: int, ref_source: str | None) -> Reader:
    """Add check `c` to the query; return the function that reads its result."""
    t = c["type"]
    res: dict[str, Any] = {"type": t, "index": i}
    if t == "rowCount":
        k = q.add("count(*)")
        return lambda row: _bounds(res, "rowCount", row[k], c.get("min"), c.get("max"), None)
    if t == "schemaDrift":
        return _schema_drift(q, c, res)
    cols = c.get("columns") or [c["column"]]
    res["column"] = ", ".join(cols)
    for col in cols:
        if col not in q.columns:
            return lambda row, col=col: _fail(res, f"{t}({res['column']}): no column {col!r}"
                                              f"{suggestion(col, q.names)}")
    col = cols[0]
    typ = q.columns[col][1]
    label = f"{t}({col})"
    if t in ("range", "mean", "quantile") and typ not in NUMERIC:
        return lambda row: _fail(res, f"{label}: column {col!r} is {typ}, not a number")
    v = q.v(col)
    if t == "nullFraction":
        n, nulls = q.add("count(*)"), q.add(f"count_if({v} IS NULL)")

        def read(row: tuple) -> dict:
            frac = row[nulls] / row[n] if row[n] else 0.0
            out = {**res, "observed": round(frac, 6), "offending": row[nulls]}
            if frac > c["max"]:
                return _fail(out, f"nullFraction({col}) = {fmt_num(frac)} > {fmt_num(c['max'])}"
                                  f" ({row[nulls]} null row(s))")
            return _ok(out, f"nullFraction({col}) = {fmt_num(frac)}")
        return read
    if t == "allowedValues":
        allowed = _typed_values(c["values"], typ)
        # No allowed value fits the column's type: every value is out.
        bad = f"{v} IS NOT NULL AND NOT list_contains(?, {v})" if allowed else f"{v} IS NOT NULL"
        args = (allowed,) if allowed else ()
        rows = q.add(f"count_if({bad})", *args)
        kinds = q.add(f"count(DISTINCT {v}) FILTER (WHERE {bad})", *args)
        example = q.add(f"min(CAST({v} AS VARCHAR)) FILTER (WHERE {bad})", *args)

        def read(row: tuple) -> dict:
            out = {**res, "observed": [] if row[example] is None else [row[example]], "offending": row[rows]}
            if row[rows]:
                more = ", …" if row[kinds] > 1 else ""
                return _fail(out, f"allowedValues({col}): {row[kinds]} value(s) not allowed in {row[rows]} row(s):"
                                  f" {row[example]!r}{more}")
            return _ok(out, f"allowedValues({col}): all allowed")
        return read
    if t == "unique":
        vs = [q.v(x) for x in cols]
        present = " AND ".join(f"{x} IS NOT NULL" for x in vs)
        key = vs[0] if len(vs) == 1 else "(" + ", ".join(vs) + ")"
        n = q.add(f"count_if({present})")
        distinct = q.add(f"count(DISTINCT {key}) FILTER (WHERE {present})")

        def read(row: tuple) -> dict:
            dupes = row[n] - row[distinct]
            out = {**res, "observed": dupes, "offending": dupes}
            if dupes:
                return _fail(out, f"unique({res['column']}): {dupes} duplicate value(s)")
            return _ok(out, f"unique({res['column']}): all unique")
        return read
    if t == "freshness":
        if typ not in ("date", "datetime", "string"):
            return lambda row: _fail(res, f"freshness({col}): column {col!r} is {typ}, not a date")
        stamp = f"TRY_CAST({v} AS TIMESTAMP)" if typ != "string" else typed_expr_of_text(v)
        newest = q.add(f"max({stamp})")
        unparsed = q.add(f"count_if({v} IS NOT NULL AND {stamp} IS NULL)")

        def read(row: tuple) -> dict:
            if row[unparsed]:
                return _fail({**res, "offending": row[unparsed]},
                             f"freshness({col}): {row[unparsed]} value(s) are not dates")
            if row[newest] is None:
                return _fail(res, f"freshness({col}): no dates")
            now = _as_of(c.get("asOf"))
            age = (now - _utc(row[newest])).total_seconds() / 86400
            out = {**res, "observed": round(age, 3)}
            if age > c["maxAgeDays"]:
                return _fail(out, f"freshness({col}): newest row is {fmt_num(age)} days old"
                                  f" > {fmt_num(c['maxAgeDays'])}")
            return _ok(out, f"freshness({col}): newest row is {fmt_num(age)} days old")
        return read
    if t == "range":
        lo, hi = c.get("min"), c.get("max")
        conds = ([f"{v} < ?"] if lo is not None else []) + ([f"{v} > ?"] if hi is not None else [])
        args = [x for x in (lo, hi) if x is not None]
        bad = "(" + " OR ".join(conds) + ")"
        rows = q.add(f"count_if({bad})", *args)
        mn, mx = q.add(f"min({v})"), q.add(f"max({v})")

        def read(row: tuple) -> dict:
            out = {**res, "observed": {"min": row[mn], "max": row[mx]}, "offending": row[rows]}
            bounds = f"[{'' if lo is None else fmt_num(lo)}, {'' if hi is None else fmt_num(hi)}]"
            if row[rows]:
                return _fail(out, f"range({col}): {row[rows]} row(s) outside {bounds}"
                                  f" (observed min {fmt_num(row[mn])}, max {fmt_num(row[mx])})")
            return _ok(out, f"range({col}): all within {bounds}")
        return read
    if t == "regex":
        bad = f"{v} IS NOT NULL AND NOT regexp_full_match(CAST({v} AS VARCHAR), ?)"
        return _offending(q, res, v, bad, (c["pattern"],), f"regex({col}): all match",
                          lambda n, e: f"regex({col}): {n} row(s) do not match {c['pattern']!r}, e.g. {e!r}")
    if t in ("mean", "quantile"):
        k = q.add(f"avg({v})") if t == "mean" else q.add(f"quantile_cont({v}, ?)", float(c["q"]))
        what = f"mean({col})" if t == "mean" else f"quantile({col}, {fmt_num(c['q'])})"
        return lambda row: _bounds(res, what, row[k], c.get("min"), c.get("max"), "no values")
    if t == "references":
        j = len(q.joins)
        q.joins.append(f"LEFT JOIN (SELECT DISTINCT k FROM {ref_source}) j{j} ON {v} = j{j}.k")
        other = c["dataset"].get("name", "?")
        return _offending(q, res, v, f"{v} IS NOT NULL AND j{j}.k IS NULL", (),
                          f"references({col}): every value is in dataset {other!r}",
                          lambda n, e: f"references({col}): {n} row(s) have no match in dataset {other!r}, e.g. {e!r}")
    raise AssertionError(t)  # pragma: no cover - shapes are checked first


def _offending(q: Query, res: dict, v: str, bad: str, args: tuple, passed: str,
               failed: Callable[[int, Any], str]) -> Reader:
    """A check whose failure is rows where `bad` holds: their count and one of their values."""
    rows = q.add(f"count_if({bad})", *args)
    example = q.add(f"min(CAST({v} AS VARCHAR)) FILTER (WHERE {bad})", *args)

    def read(row: tuple) -> dict:
        out = {**res, "offending": row[rows], "observed": row[example]}
        return _fail(out, failed(row[rows], row[example])) if row[rows] else _ok(out, passed)
    return read


def typed_expr_of_text(v: str) -> str:
    return f"COALESCE(TRY_CAST({v} AS TIMESTAMP), CAST(TRY_CAST({v} AS DATE) AS TIMESTAMP))"


def _schema_drift(q: Query, c: dict, res: dict) -> Reader:
    declared = c.get("_declared", [])
    added = [n for n in q.names if n not in declared]
    removed = [n for n in declared if n not in q.names]

    def read(row: tuple) -> dict:
        parts = ([f"column(s) not declared: {', '.join(map(repr, added))}"] if added else []) + \
                ([f"declared column(s) missing: {', '.join(map(repr, removed))}"] if removed else [])
        out = {**res, "observed": {"added": added, "removed": removed}}
        if parts:
            return _fail(out, "schemaDrift: " + "; ".join(parts))
        return _ok(out, "schemaDrift: the columns are the declared ones")
    return read


def _typed_values(values: list, typ: str) -> list:
    """Allowed values in the column's type (a value that cannot be one never matches)."""
    out: list[Any] = []
    for x in values:
        if typ == "int":
            if isinstance(x, bool):
                continue
            if isinstance(x, (int, float)) and float(x).is_integer():
                out.append(int(x))
            elif isinstance(x, str) and re.fullmatch(r"\s*[+-]?\d+\s*", x):
                out.append(int(x))
        elif typ == "float":
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                out.append(float(x))
        elif typ == "bool":
            if isinstance(x, bool):
                out.append(x)
        else:
            out.append(_canon(x))
    return out


def _canon(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _as_of(as_of: str | None) -> datetime:
    return _utc(datetime.fromisoformat(as_of)) if as_of else datetime.now(timezone.utc)


def _utc(v: date | datetime) -> datetime:
    if not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


def _bounds(res: dict, what: str, value: Any, lo: Any, hi: Any, empty: str | None) -> dict:
    if value is None:
        return _fail(res, f"{what}: {empty}")
    out = {**res, "observed": round(value, 6) if isinstance(value, float) else value}
    if lo is not None and value < lo:
        return _fail(out, f"{what} = {fmt_num(value)} < {fmt_num(lo)}")
    if hi is not None and value > hi:
        return _fail(out, f"{what} = {fmt_num(value)} > {fmt_num(hi)}")
    return _ok(out, f"{what} = {fmt_num(value)}")


def _ok(res: dict, msg: str) -> dict:
    return {**res, "passed": True, "message": msg}


def _fail(res: dict, msg: str) -> dict:
    return {**res, "passed": False, "message": msg}
