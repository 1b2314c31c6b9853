"""Checks: what needs more than one field, on resolved specs and their lowered IR.

`analyze()` is the front half of every command: load the repo, resolve references per
environment, then run the semantic checks (prompts, thresholds, GPUs, vLLM flags, capacity,
secrets). Build and the commands above it call this; nothing below imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from specops.checks.records import CheckRecords
from specops.checks.semantics import check_semantics
from specops.frontend.loader import Repo, load
from specops.gcpause import paused_gc
from specops.resolve.refs import Resolved, resolve

RecordsOf = Callable[[Resolved], CheckRecords | None]


def check(resolved: Resolved, records: RecordsOf | None = None) -> Resolved:
    """Run the semantic checks; their diagnostics join `resolved.diagnostics`. `records`
    gives the store of earlier check results for this repo (build.checkrecords.records_of),
    from which what an edit did not reach is replayed."""
    if resolved.project is not None:
        # Records only for a repo that loads and resolves cleanly: the dependency index is
        # exact only then (a reference naming no spec links nothing, yet two specs naming the
        # same missing name can read each other's: serving's gate wiring).
        use = records is not None and not resolved.diagnostics.has_errors
        check_semantics(resolved, resolved.diagnostics, records(resolved) if use else None)  # type: ignore[misc]
    return resolved


def analyze(path_or_repo: Path | str | Repo = ".", only_envs: list[str] | None = None,
            parse_memo: bool = False, records: RecordsOf | None = None) -> Resolved:
    """Load (unless given a loaded Repo), resolve and check: what `specops validate` reports.
    `parse_memo`: see frontend.loader.load; `records`: see check."""
    with paused_gc():  # acyclic data, built all at once: see gcpause
        repo = path_or_repo if isinstance(path_or_repo, Repo) else load(path_or_repo, parse_memo)
        return check(resolve(repo, only_envs), records)


__all__ = ["analyze", "check"]
