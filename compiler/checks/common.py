"""Helpers every check uses: a diagnostic at a spec path, string walks, repo paths and GPUs."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator

from specops.diagnostics import Diagnostic, Diagnostics, Pos, suggestion
from specops.gpus import AMBIGUOUS, gpu_names, gpu_problem

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.frontend.yamlio import YamlDoc
    from specops.resolve.refs import EnvView, Resolved


def at(node: "Node", path: tuple, code: str, msg: str, severity: str = "error",
        notes: tuple[str, ...] = (), prefer_key: bool = False) -> Diagnostic:
    return Diagnostic(severity, code, msg, node.file, node.doc.pos_of(("spec",) + path, prefer_key), notes)  # type: ignore[arg-type]


def strings(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for k, v in data.items():
            yield from strings(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from strings(v, path + (i,))


def offset_pos(node: "Node", path: tuple, offset: int | None) -> Pos:
    """The position `offset` characters into a single-line string value (skipping a quote)."""
    return doc_offset_pos(node.doc, ("spec",) + path, offset)


def doc_offset_pos(doc: "YamlDoc", path: tuple, offset: int | None, key: bool = False,
                   length: int | None = None) -> Pos:
    """The position `offset` characters into the single-line string at `path` of `doc` (the
    mapping key itself with `key`), skipping an opening quote, spanning `length` characters
    when given; the string's own position when the offset cannot be trusted (a multi-line or
    escaped scalar)."""
    pos = doc.pos_of(path, prefer_key=key)
    exact = doc.position(path, key) is not None
    if offset is None or not exact or pos.end_line != pos.line or pos.end_col is None:
        return pos
    text = str(path[-1] if key else get_path(doc.data, path))
    written = pos.end_col - pos.col
    if written not in (len(text), len(text) + 2):
        return pos
    col = pos.col + offset + (1 if written == len(text) + 2 else 0)
    return Pos(pos.line, col, pos.line, col + length) if length else Pos(pos.line, col)


def get_path(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def check_repo_file(resolved: "Resolved", node: "Node", path: tuple, rel: str, what: str, out: Diagnostics) -> None:
    root = resolved.repo.root
    if "\x00" in rel:
        out.add(at(node, path, "value", f"{what} must not contain a NUL character"))
        return
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        out.add(at(node, path, "path-escape", f"{what} '{rel}' must stay inside the repository"))
        return
    # Once per path and run: every environment's copy of every spec asks (the same base
    # model folder and data file, at 10k specs thousands of times).
    key = ("repo-file", rel)
    state = resolved.memo.get(key)
    if state is None:
        full = (root / rel).resolve()
        state = resolved.memo[key] = ("escapes" if not full.is_relative_to(root.resolve())
                                      else "exists" if full.exists() else "missing")
    if state == "escapes":
        out.add(at(node, path, "path-escape", f"{what} '{rel}' resolves outside the repository (symlink?)"))
    elif state == "missing":
        out.add(at(node, path, "value", f"{what} '{rel}' does not exist in the repository"))


def check_gpu(view: "EnvView", node: "Node", path: tuple, gpu_type: str, out: Diagnostics) -> None:
    names = {g.upper(): g for g in gpu_names()}
    if gpu_type.upper() in AMBIGUOUS:
        out.add(at(node, path, "value", gpu_problem(gpu_type) or ""))
        return
    if gpu_type.upper() not in names:
        out.add(at(node, path, "value", f"unknown accelerator type '{gpu_type}'" + suggestion(gpu_type, names.values())))
        return
    offered = view.target.gpus if view.target is not None else []
    if offered and names[gpu_type.upper()] not in offered:
        out.add(at(node, path, "value", f"target '{view.target_name}' (environment '{view.name}') offers "
                    f"{', '.join(offered)}, not {gpu_type}"))


