"""The threshold parser (stdlib-only, used by the compiler at validate time) and its checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from specops.runtime.thresholds import Threshold, ThresholdError, parse_threshold

VALID = [
    # text, op, value, baseline_delta, baseline_factor, metric
    (">= 0.42", ">=", 0.42, None, None, None),
    ("> 0.8", ">", 0.8, None, None, None),
    ("<= 800", "<=", 800.0, None, None, None),
    ("< 1e-3", "<", 0.001, None, None, None),
    ("== 1", "==", 1.0, None, None, None),
    (">= -0.5", ">=", -0.5, None, None, None),
    (">=.5", ">=", 0.5, None, None, None),
    ("  >=   0.42  ", ">=", 0.42, None, None, None),
    (">= baseline", ">=", None, 0.0, None, None),
    (">= baseline - 0.01", ">=", None, -0.01, None, None),
    (">=baseline-0.01", ">=", None, -0.01, None, None),
    (">= baseline + 0.5", ">=", None, 0.5, None, None),
    (">= baseline * 0.98", ">=", None, None, 0.98, None),
    ("<= baseline * 1.1", "<=", None, None, 1.1, None),
    ("rougeL >= 0.42", ">=", 0.42, None, None, "rougeL"),
    ("latency_p95_ms <= baseline + 50", "<=", None, 50.0, None, "latency_p95_ms"),
]


@pytest.mark.parametrize("text,op,value,delta,factor,metric", VALID)
def test_parse_valid(text, op, value, delta, factor, metric):
    t = parse_threshold(text)
    assert (t.op, t.value, t.baseline_delta, t.baseline_factor, t.metric) == (op, value, delta, factor, metric)
    assert t.raw == " ".join(text.split())


INVALID = [
    # text, offset of the problem, a phrase of the reason
    ("", 0, "empty threshold"),
    ("   ", 3, "empty threshold"),
    ("0.42", 0, "comparison operator"),
    ("=> 0.42", 0, "'>='"),
    ("= 0.42", 0, "'=='"),
    (">=", 2, "a number or 'baseline'"),
    (">= abc", 3, "unknown name 'abc'"),
    (">= baselines", 3, "unknown name 'baselines'"),
    (">= 0.4x", 6, "unexpected 'x'"),
    (">= 0.4 0.5", 7, "unexpected '0.5'"),
    (">= baseline / 2", 12, "'+', '-' or '*'"),
    (">= baseline -", 13, "unsigned number"),
    (">= baseline - -0.01", 14, "unsigned number"),
    (">= baseline * 0", 14, "must be positive"),
    (">= 1e999", 3, "out of range"),
    ("auc 0.9", 4, "after 'auc'"),
    (">= nan", 3, "unknown name 'nan'"),
]


@pytest.mark.parametrize("text,offset,reason", INVALID)
def test_parse_invalid_reports_offset(text, offset, reason):
    with pytest.raises(ThresholdError) as ei:
        parse_threshold(text)
    assert ei.value.offset == offset, str(ei.value)
    assert reason in ei.value.reason
    assert isinstance(ei.value, ValueError)
    assert f"at offset {offset}" in str(ei.value)


def test_check_absolute_and_relative():
    assert parse_threshold(">= 0.7").check(0.7)
    assert not parse_threshold("> 0.7").check(0.7)
    assert parse_threshold("<= 800").check(799.9)
    assert parse_threshold("== 1").check(1.0 + 1e-12)
    rel = parse_threshold(">= baseline - 0.01")
    assert rel.relative
    assert rel.bound(0.82) == pytest.approx(0.81)
    assert rel.check(0.811, baseline=0.82)
    assert not rel.check(0.809, baseline=0.82)
    assert parse_threshold(">= baseline * 0.98").check(0.98, baseline=1.0)
    with pytest.raises(ValueError, match="needs a baseline"):
        rel.check(0.9)


def test_params_round_trip():
    for text, *_ in VALID:
        t = parse_threshold(text)
        p = t.to_params("m" if t.metric is None else None)
        back = Threshold.from_params(p)
        assert (back.op, back.value, back.baseline_delta, back.baseline_factor, back.raw) == (
            t.op, t.value, t.baseline_delta, t.baseline_factor, t.raw)


def test_from_params_rejects_bad_shapes():
    with pytest.raises(ValueError, match="exactly one of"):
        Threshold.from_params({"metric": "auc", "op": ">=", "value": 0.5, "baseline_delta": 0.1})
    with pytest.raises(ValueError, match="op must be one of"):
        Threshold.from_params({"metric": "auc", "op": "=>", "value": 0.5})
    with pytest.raises(ValueError, match="unknown key 'vaule'"):
        Threshold.from_params({"metric": "auc", "op": ">=", "vaule": 0.5})
    with pytest.raises(ValueError, match="names metric 'f1'"):
        Threshold.from_params({"metric": "auc", "raw": "f1 >= 0.5"})
    # Only the text: parsed.
    t = Threshold.from_params({"metric": "auc", "raw": ">= baseline - 0.02"})
    assert (t.metric, t.baseline_delta) == ("auc", -0.02)


def test_imports_stay_light():
    """The compiler imports these at startup: no numpy, sklearn or torch may come with them."""
    code = ("import sys, specops.runtime, specops.runtime.thresholds, specops.runtime.common, "
            "specops.runtime.tables; heavy = [m for m in ('numpy', 'sklearn', 'torch', 'transformers', "
            "'pandas') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
