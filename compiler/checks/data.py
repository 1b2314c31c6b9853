"""Models and datasets: columns, splits, repo files, accelerators, and local data files.

For a `file://` dataset with declared columns, validate reads the CSV header line (with the
declared CSV options) or the Parquet footer's schema, never the data: milliseconds for a file
of any size.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specops.checks.common import at, check_gpu, check_repo_file
from specops.checks.lineage import check_model_steps, check_producer
from specops.diagnostics import Diagnostic, Diagnostics, suggestion
from specops.resolve.lockfile import LOCK_FILE, LockError, StatCache, local_changed, read_lock
from specops.runtime.estimators import check_hyperparameters
from specops.runtime.estimators import resolve as resolve_estimator

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved

NUMERIC = ("int", "float")
# Bytes read to find a CSV's first record: a header longer than this is not a header.
HEADER_BYTES = 1 << 20


def check_model(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    acc = spec.resources.accelerator
    if acc is not None:
        check_gpu(view, node, ("resources", "accelerator", "type"), acc.type, out)
    if spec.resources.nodes > 1 and spec.type == "classical" and spec.command is None:
        out.add(at(node, ("resources", "nodes"), "unsupported",
                   "a classical model trains on one machine; more nodes need an LLM fine-tune or a `command`"))
    check_model_steps(view, node, out)
    if spec.type == "classical":
        check_estimator(node, out)
        for use in spec.datasets:
            ds = view.get("Dataset", use.dataset)
            if ds is None or not ds.spec.columns:
                continue
            cols = [c.name for c in ds.spec.columns]
            wanted = [("target", spec.classical.target)] + [
                (("features", i), f) for i, f in enumerate(spec.classical.features or [])]
            for where, col in wanted:
                if col not in cols:
                    p = ("classical",) + (where if isinstance(where, tuple) else (where,))
                    out.add(at(node, p, "unresolved-ref", f"dataset '{ds.name}' has no column '{col}'"
                                + suggestion(col, cols)))
            if use.split not in ds.spec.splits:
                out.add(at(node, ("datasets", spec.datasets.index(use), "split"), "unresolved-ref",
                            f"dataset '{ds.name}' has no split '{use.split}'" + suggestion(use.split, ds.spec.splits)))
    else:
        if spec.llm.base.path is not None:
            check_repo_file(resolved, node, ("llm", "base", "path"), spec.llm.base.path, "base model folder", out)
        if spec.hyperparameters and spec.command is None:
            # The fine-tune step takes its knobs from `llm.finetune`; nothing reads these.
            out.add(at(node, ("hyperparameters",), "unsupported",
                       "an LLM's training knobs live in `llm.finetune`; `hyperparameters` would be ignored",
                       prefer_key=True))


def check_estimator(node: "Node", out: Diagnostics) -> None:
    """The algorithm is in the estimator catalogue and every hyperparameter is one of its own
    (or an alias), each unknown key reported at its own line."""
    spec = node.spec
    if spec.command is not None:
        return  # a user command trains; its hyperparameters are its own business
    path, why = resolve_estimator(spec.classical.algorithm, spec.classical.task)
    if path is None:
        out.add(at(node, ("classical", "algorithm"), "value", why or "unknown algorithm"))
        return
    _, problems = check_hyperparameters(path, dict(spec.hyperparameters))
    for key, msg in problems:
        out.add(at(node, ("hyperparameters", key), "hyperparameter", msg, prefer_key=True))


def check_dataset(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    src = spec.source
    if src.csv is not None and src.format != "csv":
        out.add(at(node, ("source", "csv"), "value", f"`csv` options are for format csv, not {src.format}"))
    if src.format == "csv" and src.csv is not None and not src.csv.header and not spec.columns:
        out.add(at(node, ("source", "csv", "header"), "missing-field",
                    "a CSV without a header row needs `columns` to name its fields, in order"))
    _check_check_columns(view, node, out)
    declared = [c.name for c in spec.columns]
    for i, col in enumerate(spec.pii.columns):
        if declared and col not in declared:
            out.add(at(node, ("pii", "columns", i), "unresolved-ref", f"no declared column '{col}'"
                       + suggestion(col, declared)))
    if spec.produced_by is not None:
        check_producer(view, node, out)
        return
    if src.uri.startswith("file://"):
        rel = src.uri[len("file://"):]
        before = len(out)
        check_repo_file(resolved, node, ("source", "uri"), rel, "dataset file", out)
        if len(out) == before and spec.columns:
            check_data_header(resolved.repo.root / rel, rel, node, out)


def _check_check_columns(view: "EnvView", node: "Node", out: Diagnostics) -> None:
    """Columns that checks name exist among the declared ones, with a type that fits."""
    columns = {c.name: c.type for c in node.spec.columns}
    if not columns:
        return
    for i, c in enumerate(node.spec.checks):
        named: list[tuple[tuple, str]] = []
        if getattr(c, "column", None) is not None:
            named.append((("checks", i, "column"), c.column))
        for j, col in enumerate(getattr(c, "columns", None) or []):
            named.append((("checks", i, "columns", j), col))
        for path, col in named:
            if col not in columns:
                out.add(at(node, path, "unresolved-ref", f"no declared column '{col}'" + suggestion(col, columns)))
            elif c.type in ("range", "mean", "quantile") and columns[col] not in NUMERIC:
                out.add(at(node, path, "value", f"{c.type} needs a numeric column; '{col}' is {columns[col]}"))
            elif c.type == "freshness" and columns[col] not in ("date", "datetime", "string"):
                out.add(at(node, path, "value", f"freshness needs a date column; '{col}' is {columns[col]}"))
        if c.type == "references":
            other = view.get("Dataset", c.dataset)
            key = c.key or c.column
            if other is not None and other.spec.columns and key not in {x.name for x in other.spec.columns}:
                path = ("checks", i, "key") if c.key else ("checks", i, "column")
                out.add(at(node, path, "unresolved-ref", f"dataset '{other.name}' has no column '{key}'"
                            + suggestion(key, [x.name for x in other.spec.columns])))


def check_lockfile(resolved: "Resolved", out: Diagnostics) -> None:
    """Locked file:// sources against specops.lock, and a `source.sha256` written in the spec
    against its file: size, then mtime, then sha256; never the network (remote pins are
    `specops lock --check`'s). A version the lock does not pin yet is a new source: the step
    runs unpinned until `specops lock` records it."""
    root = resolved.repo.root
    try:
        sources = read_lock(root) or {}
    except LockError as e:
        out.add(Diagnostic("error", "data-lock", str(e), LOCK_FILE, None))
        sources = {}
    stats = StatCache(root)
    seen: set[str] = set()
    for view in resolved.envs.values():
        for node in view.of_kind("Dataset"):
            src = node.spec.source
            if src.uri is None or not src.uri.startswith("file://") or src.uri in seen:
                continue
            seen.add(src.uri)
            if not _regular(root / src.uri[len("file://"):]):
                continue
            if src.sha256:
                _, now = stats.digest(src.uri[len("file://"):])
                if now != f"sha256:{src.sha256}":
                    out.add(at(node, ("source", "sha256"), "data-lock",
                               f"'{src.uri[len('file://'):]}' is {now}, not the sha256 the spec pins"))
            pin = sources.get(src.uri)
            if pin is None:
                continue
            if pin.get("version") != src.version:
                out.add(at(node, ("source", "version"), "data-lock",
                           f"specops.lock pins '{src.uri}' at version '{pin.get('version')}', the spec says"
                           f" '{src.version}': run `specops lock`", severity="warning"))
                continue
            why = local_changed(root, src.uri, pin, stats)
            if why:
                out.add(at(node, ("source", "uri"), "data-lock", why + "; bump `version` and run `specops lock`"
                           " if the change is intended"))
    stats.save()


def _regular(path: Path) -> bool:
    """A FIFO or device would block or never end: only regular files are read."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_data_header(path: Path, rel: str, node: "Node", out: Diagnostics) -> None:
    """The file's header (CSV) or schema (Parquet) against the declared columns."""
    src = node.spec.source
    if not _regular(path):
        out.add(at(node, ("source", "uri"), "data-schema", f"dataset file '{rel}' is not a regular file"))
        return
    declared = [c.name for c in node.spec.columns]
    if src.format == "csv":
        opts = src.csv
        header = opts.header if opts else True
        try:
            first = first_csv_record(path, opts)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            out.add(at(node, ("source", "uri"), "data-schema", f"cannot read the first line of '{rel}': {e}"))
            return
        if first is None:
            return  # an empty file: the rowCount check is where that is caught
        if not header:
            if len(first) != len(declared):
                out.add(at(node, ("columns",), "data-schema",
                            f"'{rel}' has {len(first)} field(s) per row but `columns` declares {len(declared)}"
                            " (a CSV without a header is read by position)", prefer_key=True))
            return
        fields = first
    elif src.format == "parquet":
        fields = parquet_columns(path)
        if fields is None:
            out.add(at(node, ("source", "uri"), "data-schema", f"'{rel}' is not a Parquet file"))
            return
    else:
        return
    hint = ()
    if src.format == "csv" and all(_looks_like_data(f) for f in fields if f) and any(_is_number(f) for f in fields):
        hint = (f"the first line of '{rel}' reads like data ({','.join(fields[:4])}…): if the file has no header"
                " row, set `source.csv.header: false`",)
    where = "header" if src.format == "csv" else "schema"
    if hint and not set(declared) & set(fields):
        # No declared name in the first line: one error, not one per column.
        out.add(at(node, ("columns",), "data-schema", f"no declared column is in the header of '{rel}'",
                   notes=hint, prefer_key=True))
        return
    for i, c in enumerate(node.spec.columns):
        if c.name not in fields:
            out.add(at(node, ("columns", i, "name"), "data-schema",
                       f"column '{c.name}' is not in the {where} of '{rel}'" + suggestion(c.name, fields),
                       notes=hint))


def first_csv_record(path: Path, opts: Any) -> list[str] | None:
    encoding = opts.encoding if opts else "utf-8"
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    # Incremental: a read that ends inside a multi-byte character is not an error.
    codec = {"utf-8": "utf-8-sig"}.get(encoding, encoding)
    text = codecs.getincrementaldecoder(codec)().decode(head, final=len(head) < HEADER_BYTES)
    reader = csv.reader(io.StringIO(text), delimiter=opts.delimiter if opts else ",",
                        quotechar=opts.quote if opts else '"', escapechar=opts.escape if opts else None)
    return next(reader, None)


def parquet_columns(path: Path) -> list[str] | None:
    """Column names from the Parquet footer only (pyarrow reads the metadata, not the data)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, ValueError):
        return None


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _looks_like_data(s: str) -> bool:
    return _is_number(s) or len(s) <= 2
