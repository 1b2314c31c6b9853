"""Checks: what needs more than one field, on resolved specs and their lowered IR.

`analyze()` is the front half of every command: load the repo, resolve references per
environment, then run the semantic checks (prompts, thresholds, GPUs, vLLM flags, capacity,
secrets). Build and the commands above it call this; nothing below imports it.
"""

from __future__ import annotations

from pathlib import Path

from specops.checks.semantics import check_semantics
from specops.frontend.loader import Repo, load
from specops.gcpause import paused_gc
from specops.resolve.refs import Resolved, resolve


def check(resolved: Resolved) -> Resolved:
    """Run the semantic checks; their diagnostics join `resolved.diagnostics`."""
    if resolved.project is not None:
        check_semantics(resolved, resolved.diagnostics)
    return resolved


def analyze(path_or_repo: Path | str | Repo = ".", only_envs: list[str] | None = None,
            parse_memo: bool = False) -> Resolved:
    """Load (unless given a loaded Repo), resolve and check: what `specops validate` reports.
    `parse_memo`: see frontend.loader.load."""
    with paused_gc():  # acyclic data, built all at once: see gcpause
        repo = path_or_repo if isinstance(path_or_repo, Repo) else load(path_or_repo, parse_memo)
        return check(resolve(repo, only_envs))


__all__ = ["analyze", "check"]
