"""Run a compiled lifecycle pipeline on a local target and report it step by step."""

from __future__ import annotations

from typing import Callable

from specops.backends.registry import pipeline_backend
from specops.backends.zenml_run import run_local
from specops.ir import Pipeline
from specops.resolve.refs import Resolved


def _fmt_metrics(result: dict | None) -> str:
    if not result:
        return ""
    metrics = result.get("metrics")
    if isinstance(metrics, dict):
        return "  " + ", ".join(f"{k}={v}" for k, v in sorted(metrics.items()))
    if "version" in result and "name" in result:
        return f"  {result['name']}@{result['version']}"
    if "rows" in result:
        return f"  {result['rows']} rows"
    return ""


def run_pipeline(resolved: Resolved, p: Pipeline, echo: Callable[[str], None]) -> bool:
    """Compile `p` for its backend and run it on the local stack; True when it succeeded."""

    backend = pipeline_backend(p.target.backend)
    if backend.NAME != "zenml":
        raise NotImplementedError(f"local runs are on ZenML's local stack; target backend is {backend.NAME}")

    root = resolved.repo.root
    state = root / ".specops"
    files = backend.emit(p)
    echo(f"running {p.name} ({p.env}) on ZenML's local stack: {len(p.steps)} steps")
    result = run_local(files, workdir=state / "runs" / p.env / p.name, repo_root=root,
                       zenml_config_path=state / "zenml")
    for step in p.steps:
        sr = result.steps.get(step.name)
        status = sr.status if sr else "not run"
        line = f"  {step.name:<28} {status}"
        if sr is not None:
            line += _fmt_metrics(sr.result)
        echo(line)
    if result.ok:
        echo(f"{p.name}: run {result.status} in {result.wall_s:.1f} s")
        return True
    echo(f"{p.name}: run failed: {result.error}")
    echo(f"  log: {result.log}")
    return False
