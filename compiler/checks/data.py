"""Models and datasets: columns, splits, repo files and accelerators they name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specops.checks.common import at, check_gpu, check_repo_file
from specops.diagnostics import Diagnostics, suggestion

if TYPE_CHECKING:
    from specops.frontend.overrides import Node
    from specops.resolve.refs import EnvView, Resolved


def check_model(resolved: "Resolved", view: "EnvView", node: "Node", out: Diagnostics) -> None:
    spec = node.spec
    acc = spec.resources.accelerator
    if acc is not None:
        check_gpu(view, node, ("resources", "accelerator", "type"), acc.type, out)
    if spec.type == "classical":
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
    elif spec.llm.base.path is not None:
        check_repo_file(resolved, node, ("llm", "base", "path"), spec.llm.base.path, "base model folder", out)


def check_dataset(resolved: "Resolved", node: "Node", out: Diagnostics) -> None:
    uri = node.spec.source.uri
    if uri.startswith("file://"):
        check_repo_file(resolved, node, ("source", "uri"), uri[len("file://"):], "dataset file", out)


