"""Eval-gate threshold texts: parse, check, and the params the gate step receives.

Stdlib only: the compiler calls `parse_threshold` at validate time (to report a bad threshold
at the spec's line and column) and must not pay for numpy or sklearn to do it.

Grammar (whitespace between tokens is free; nothing else is accepted)::

    threshold := [metric] op rhs
    metric    := [A-Za-z_][A-Za-z0-9_.-]*          e.g. rougeL, latency_p95_ms
    op        := ">=" | ">" | "<=" | "<" | "=="
    rhs       := number                             absolute:   ">= 0.42", "<= 800", "> -1e-3"
               | "baseline"                         relative:   ">= baseline"
               | "baseline" ("+" | "-") unumber     relative:   ">= baseline - 0.01"
               | "baseline" "*" unumber             relative:   ">= baseline * 0.98"  (factor > 0)
    number    := ["+" | "-"] unumber
    unumber   := digits ["." digits] [exponent] | "." digits [exponent]    (finite)

`*` is supported because "no worse than 98 % of the live model" is the natural way to gate a
latency or a score whose scale differs between models; the factor must be positive (a
negative factor would silently flip the comparison). A metric name in front is optional
(`rougeL >= 0.42` and `>= 0.42` both parse); the gate step carries it separately anyway.

Errors are `ThresholdError` (a ValueError) whose `offset` is the 0-based character offset
of the problem in the text, so the caller can point at `column + offset` in the spec.

Gate params for one check (what `Threshold.to_params(metric)` returns, see `gate.py`)::

    {"metric": "auc", "op": ">=", "value": 0.7 | null, "baseline_delta": -0.01 | null,
     "baseline_factor": 0.98 | null, "raw": ">= baseline - 0.01"}

Exactly one of value / baseline_delta / baseline_factor is non-null.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    # Metrics are rounded floats: exact equality would make `== 1.0` flaky at the 1e-16 level.
    "==": lambda a, b: math.isclose(a, b, rel_tol=0.0, abs_tol=1e-9),
}
# The relation that holds when the check fails, for the human message ("0.78 < 0.95").
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}

_WS = re.compile(r"\s*")
_OP = re.compile(r">=|<=|==|>|<")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_UNUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_BASELINE = "baseline"


class ThresholdError(ValueError):
    """A threshold text that does not parse. `offset` is 0-based into `text`."""

    def __init__(self, reason: str, text: str, offset: int):
        self.reason = reason
        self.text = text
        self.offset = offset
        super().__init__(f"invalid threshold {text!r}: {reason} at offset {offset}")


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold. Exactly one of `value`, `baseline_delta`, `baseline_factor` is set."""

    op: str
    value: float | None = None
    baseline_delta: float | None = None
    baseline_factor: float | None = None
    metric: str | None = None
    raw: str = ""

    @property
    def relative(self) -> bool:
        """True when the threshold depends on the live baseline."""
        return self.value is None

    def bound(self, baseline: float | None) -> float:
        """The number the metric is compared with; needs `baseline` when relative."""
        if self.value is not None:
            return self.value
        if baseline is None:
            raise ValueError(f"threshold {self.raw!r} needs a baseline value")
        if self.baseline_factor is not None:
            return baseline * self.baseline_factor
        return baseline + (self.baseline_delta or 0.0)

    def check(self, observed: float, baseline: float | None = None) -> bool:
        """Whether `observed <op> bound(baseline)` holds."""
        return OPS[self.op](observed, self.bound(baseline))

    def to_params(self, metric: str | None = None) -> dict[str, Any]:
        """The JSON-able gate-step params for this check (see the module docstring)."""
        name = metric or self.metric
        if not name:
            raise ValueError(f"threshold {self.raw!r} names no metric")
        return {
            "metric": name,
            "op": self.op,
            "value": self.value,
            "baseline_delta": self.baseline_delta,
            "baseline_factor": self.baseline_factor,
            "raw": self.raw,
        }

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Threshold:
        """Inverse of `to_params`; validates the shape (ValueError with the key at fault)."""
        allowed = {"metric", "op", "value", "baseline_delta", "baseline_factor", "raw"}
        unknown = sorted(set(p) - allowed)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} in gate check (allowed: {', '.join(sorted(allowed))})")
        metric = p.get("metric")
        if not isinstance(metric, str) or not metric:
            raise ValueError("gate check needs 'metric' (a non-empty string)")
        op = p.get("op")
        raw = p.get("raw") or ""
        if op is None and raw:
            # A check given only as text: parse it (keeps hand-written params short).
            t = parse_threshold(raw)
            if t.metric is not None and t.metric != metric:
                raise ValueError(f"gate check {metric!r}: its threshold text names metric {t.metric!r}")
            return cls(op=t.op, value=t.value, baseline_delta=t.baseline_delta,
                       baseline_factor=t.baseline_factor, metric=metric, raw=t.raw)
        if op not in OPS:
            raise ValueError(f"gate check {metric!r}: op must be one of {', '.join(OPS)}, got {op!r}")
        nums = {}
        for key in ("value", "baseline_delta", "baseline_factor"):
            v = p.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"gate check {metric!r}: {key} must be a finite number, got {v!r}")
            nums[key] = float(v)
        if len(nums) != 1:
            raise ValueError(
                f"gate check {metric!r}: exactly one of value, baseline_delta, baseline_factor must be set"
            )
        if nums.get("baseline_factor", 1.0) <= 0:
            raise ValueError(f"gate check {metric!r}: baseline_factor must be positive")
        if not raw:
            raw = _render(op, nums)
        return cls(op=op, metric=metric, raw=raw, **nums)


def _render(op: str, nums: dict[str, float]) -> str:
    if "value" in nums:
        return f"{op} {_fmt(nums['value'])}"
    if "baseline_factor" in nums:
        return f"{op} baseline * {_fmt(nums['baseline_factor'])}"
    d = nums["baseline_delta"]
    if d == 0:
        return f"{op} baseline"
    return f"{op} baseline {'-' if d < 0 else '+'} {_fmt(abs(d))}"


def _fmt(v: float) -> str:
    """Short, stable rendering of a number for messages: 0.95, 0.7812, 800, 1e-05."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def parse_threshold(text: str) -> Threshold:
    """Parse a threshold text (grammar in the module docstring); ThresholdError if invalid.
    Once per distinct text (a Threshold is immutable): gates and monitors are lowered and
    checked per environment, and a repo repeats a few threshold texts."""
    return _parse_cached(text) if type(text) is str else _parse(text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Threshold:
    return _parse(text)


def _parse(text: str) -> Threshold:
    if not isinstance(text, str):
        raise ThresholdError(f"expected a string, got {type(text).__name__}", str(text), 0)
    pos = _WS.match(text, 0).end()
    if pos == len(text):
        raise ThresholdError("empty threshold; expected e.g. '>= 0.8' or '>= baseline - 0.01'", text, pos)

    metric = None
    m = _NAME.match(text, pos)
    if m and m.group() != _BASELINE:
        after = _WS.match(text, m.end()).end()
        if _OP.match(text, after):
            metric, pos = m.group(), after
        else:
            raise ThresholdError(
                f"expected a comparison operator (>=, >, <=, <, ==) after {m.group()!r}", text, after
            )

    m = _OP.match(text, pos)
    if not m:
        if text.startswith("=>", pos) or text.startswith("=<", pos):
            reason = f"operator {text[pos:pos + 2]!r} is written {text[pos + 1] + '='!r}"
        elif text.startswith("=", pos):
            reason = "'=' is not an operator; use '=='"
        else:
            reason = "expected a comparison operator (>=, >, <=, <, ==)"
        raise ThresholdError(reason, text, pos)
    op = m.group()
    pos = _WS.match(text, m.end()).end()
    if pos == len(text):
        raise ThresholdError(f"expected a number or 'baseline' after {op!r}", text, pos)

    value = delta = factor = None
    if text.startswith(_BASELINE, pos) and not _continues_name(text, pos + len(_BASELINE)):
        pos = _WS.match(text, pos + len(_BASELINE)).end()
        if pos == len(text):
            delta = 0.0
        elif text[pos] in "+-*":
            sign = text[pos]
            pos = _WS.match(text, pos + 1).end()
            num, pos = _number(text, pos, signed=False, after=f"'baseline {sign}'")
            if sign == "*":
                if num <= 0:
                    raise ThresholdError("the baseline factor must be positive", text, pos - 1)
                factor = num
            else:
                delta = num if sign == "+" else -num
        else:
            raise ThresholdError("expected '+', '-' or '*' after 'baseline'", text, pos)
    else:
        if _NAME.match(text, pos):
            word = _NAME.match(text, pos).group()
            raise ThresholdError(
                f"unknown name {word!r}; the right-hand side is a number or 'baseline'", text, pos
            )
        value, pos = _number(text, pos, signed=True, after=repr(op))

    pos = _WS.match(text, pos).end()
    if pos != len(text):
        raise ThresholdError(f"unexpected {text[pos:pos + 12]!r} after the threshold", text, pos)
    return Threshold(op=op, value=value, baseline_delta=delta, baseline_factor=factor,
                     metric=metric, raw=" ".join(text.split()))


def _continues_name(text: str, i: int) -> bool:
    return i < len(text) and (text[i].isalnum() or text[i] in "_.")


def _number(text: str, pos: int, *, signed: bool, after: str) -> tuple[float, int]:
    start = pos
    if signed and pos < len(text) and text[pos] in "+-":
        pos += 1
    m = _UNUMBER.match(text, pos)
    if not m:
        what = "a number" if signed else "an unsigned number"
        raise ThresholdError(f"expected {what} after {after}", text, pos)
    end = m.end()
    if _continues_name(text, end) and not text[end] == ".":
        raise ThresholdError(f"unexpected {text[end]!r} in number", text, end)
    v = float(text[start:end])
    if not math.isfinite(v):
        raise ThresholdError("number out of range", text, start)
    return v, end
