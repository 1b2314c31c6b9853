"""Records of check calls: what a check found for a unit of the dependency index (or a
file) last time, replayed instead of checking again while its inputs are unchanged. The
store, and the signatures that say "unchanged", are the build stage's
(build/checkrecords.py, build/units.py); the checks only say what they read."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from specops.diagnostics import Diagnostic, Diagnostics

if TYPE_CHECKING:
    from specops.resolve.refs import EnvView


class CheckRecords(Protocol):
    """Stored diagnostics of earlier check calls (build/checkrecords.py implements it)."""

    def unit(self, view: EnvView, key: str) -> str | None:
        """The signature of the unit of node `key` in `view` (None: do not record)."""

    def file(self, rel: str) -> str | None:
        """The key of a loaded file's own records (None: do not record)."""

    def shared(self) -> str | None:
        """The scope of results that depend only on what their call names (a CEL outcome by
        expression and bound values), whatever unit asked."""

    def get(self, scope: str, call: str) -> list | None:
        """The rows (Diagnostic.to_row) call `call` gave under `scope` last time, or None."""

    def put(self, scope: str, call: str, rows: list) -> None:
        """What call `call` gave now (with no error among them: see `replayed`)."""

    def save(self) -> None:
        """Store this run's records for the next one."""


def replayed(records: CheckRecords | None, scope: str | None, call: str, out: Diagnostics,
             run: Callable[[Diagnostics], None]) -> None:
    """`run(out)`, or its diagnostics from `records` when it ran under the same `scope`.
    Results with an error are not recorded: a run that fails is redone in full (an error
    is where an unforeseen input, like a symlink turned outside the repo, would matter)."""
    if records is None or scope is None:
        run(out)
        return
    rows = records.get(scope, call)
    if rows is not None:
        try:
            out.extend([Diagnostic.from_row(r) for r in rows])
            records.put(scope, call, rows)
            return
        except (TypeError, ValueError):
            pass  # a record of another shape: run the check
    mine = Diagnostics()
    run(mine)
    out.extend(mine.items)
    if not mine.has_errors:
        records.put(scope, call, [d.to_row() for d in mine.items])
