"""Significance of a drop in per-row outcomes against the baseline's stored row outcomes."""

from __future__ import annotations

import pytest

from specops.runtime.significance import paired_regression, rate_regression

ROWS = [f"r{i:02d}" for i in range(40)]


def test_six_injected_regressions_of_forty_are_significant() -> None:
    base = {r: True for r in ROWS}
    now = {r: i not in (3, 7, 11, 19, 23, 31) for i, r in enumerate(ROWS)}
    s = paired_regression(now, base, alpha=0.05)
    assert s.significant and s.test == "mcnemar-exact"
    assert s.p_value == pytest.approx(0.5 ** 6)
    assert s.regressed == ["r03", "r07", "r11", "r19", "r23", "r31"] and s.paired == 40


def test_a_single_regressed_row_is_not_significant() -> None:
    base = {r: True for r in ROWS}
    now = dict(base, r05=False)
    s = paired_regression(now, base, alpha=0.05)
    assert not s.significant and s.p_value == pytest.approx(0.5) and s.regressed == ["r05"]


def test_improvements_offset_regressions() -> None:
    base = {r: i % 2 == 0 for i, r in enumerate(ROWS)}
    now = {r: (i % 2 == 1) if i < 12 else base[r] for i, r in enumerate(ROWS)}  # 6 lost, 6 gained
    s = paired_regression(now, base, alpha=0.05)
    assert not s.significant and len(s.regressed) == 6 and len(s.improved) == 6


def test_alpha_decides() -> None:
    base = {r: True for r in ROWS}
    now = {r: i >= 4 for i, r in enumerate(ROWS)}  # 4 regressed: p = 1/16
    assert not paired_regression(now, base, alpha=0.05).significant
    assert paired_regression(now, base, alpha=0.1).significant


def test_unpaired_rate_test() -> None:
    assert rate_regression(34, 40, 0.95, alpha=0.05).significant
    assert not rate_regression(38, 40, 0.95, alpha=0.05).significant
    assert rate_regression(39, 40, 1.0, alpha=0.05).significant
    assert rate_regression(0, 0, 0.9, alpha=0.05).p_value == 1.0
