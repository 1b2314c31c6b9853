"""Exceptions of the step runtime. Messages are one line, meant for a human."""

from __future__ import annotations


class StepError(Exception):
    """A step could not do its work; `str(e)` is one line, printed as-is by the CLI."""


class StepFailed(StepError):
    """A data check or a gate ran and said no (the pipeline must stop here)."""


class ParamError(StepError, ValueError):
    """The step's params or inputs are wrong (a compiler/runtime mismatch or a bad spec value)."""
