"""Tabular data for the step runtime: column types, the dataset manifest, and reading splits.

The data_check step reads sources through the columnar engine (engine.py) and writes each
split as a Parquet file typed by the schema; later steps read them here, as a pyarrow Table
(`load_split_table`, for training and scoring) or as rows (`load_split`, for small data).

Column types (schema `type`): string, int, float, bool, date, datetime; accepted aliases:
str, category -> string; integer -> int; double, number -> float; boolean -> bool;
timestamp -> datetime. In CSV an empty cell is null.

The data_check step writes `dataset.json` next to its splits, and later steps read it::

    {"name": "churn", "version": "v3", "format": "parquet",
     "schema": [{"name": "tenure_months", "type": "int", "nullable": false}, ...],  # every column
     "splits": {"train": "train.parquet", "test": "test.parquet"}}

Source formats: csv (with the Dataset's CSV options), jsonl, json, parquet, and hf (a dataset in
the local Hugging Face cache).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specops.diagnostics import suggestion
from specops.runtime.errors import ParamError

FORMATS = ("csv", "jsonl", "json", "parquet", "hf")
TYPES = ("string", "int", "float", "bool", "date", "datetime")
TYPE_ALIASES = {
    "str": "string", "category": "string", "integer": "int", "double": "float",
    "number": "float", "boolean": "bool", "timestamp": "datetime",
}
NUMERIC = ("int", "float", "bool")


def a_type(t: str) -> str:
    """'an int', 'a float': the type with its article, for messages."""
    return f"an {t}" if t[0] in "aeiou" else f"a {t}"


def canonical_type(t: str, where: str) -> str:
    t2 = TYPE_ALIASES.get(t, t)
    if t2 not in TYPES:
        raise ParamError(f"{where}: unknown column type {t!r} (expected one of {', '.join(TYPES)})"
                         f"{suggestion(str(t), list(TYPES) + list(TYPE_ALIASES))}")
    return t2


# ---- dataset manifest and splits ----------------------------------------------------------


def read_manifest(data_dir: Path, where: str) -> dict[str, Any]:
    path = data_dir / "dataset.json"
    if not path.is_file():
        raise ParamError(f"{where}: input {data_dir.name!r} has no dataset.json"
                         f" (expected the output of a data_check step)")
    return json.loads(path.read_text(encoding="utf-8"))


def _split_path(data_dir: Path, split: str, where: str) -> tuple[Path, dict[str, Any]]:
    manifest = read_manifest(data_dir, where)
    files = manifest.get("splits", {})
    if split not in files:
        raise ParamError(f"{where}: the dataset has no split {split!r} (have: {', '.join(sorted(files))})"
                         f"{suggestion(split, files)}")
    if manifest.get("format") != "parquet":
        raise ParamError(f"{where}: the split files are {manifest.get('format')!r}; this runtime reads the"
                         f" Parquet splits its data_check writes (re-run the data_check step)")
    return data_dir / files[split], manifest


def load_split_table(data_dir: Path, split: str, where: str, columns: list[str] | None = None) -> tuple[Any, dict[str, str]]:
    """One split written by data_check as a pyarrow Table (only `columns`, when given), and
    every column's type. Columnar: training reads numpy arrays from it without a row loop."""
    import pyarrow.parquet as pq

    path, manifest = _split_path(data_dir, split, where)
    types = {c["name"]: c["type"] for c in manifest.get("schema") or []}
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, ValueError) as e:
        raise ParamError(f"{where}: cannot read split {split!r}: {str(e).splitlines()[0]}") from None
    return table, types


def load_split(data_dir: Path, split: str, where: str) -> tuple[list[str], list[dict[str, Any]], dict[str, str]]:
    """Columns, typed rows (Python values, None for null) and column types of one split.

    For steps that work row by row on small data (prompts, generation); training and
    classical evaluation read `load_split_table` instead."""
    table, types = load_split_table(data_dir, split, where)
    return list(table.column_names), table.to_pylist(), types
