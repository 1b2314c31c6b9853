"""Is a drop in per-row pass outcomes against the baseline significant?

Paired rows (the same row id in the baseline's stored outcomes and in this run): the exact
McNemar test, one-sided, which is the exact binomial test on the discordant pairs: with
`b` rows that regressed (passed in the baseline, fail now) and `c` that improved, the p-value
is P(X >= b) for X ~ Binomial(b + c, 1/2). Without paired rows (the baseline stored only a
pass count, or the rows changed), the one-sided exact binomial test of this run's passes
against the baseline's pass rate: P(X <= passes) for X ~ Binomial(n, baseline rate).

scipy's `binomtest` computes both tails (a well-kept implementation; the runtime imports it
only when a baseline exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Significance:
    test: str  # "mcnemar-exact" | "binomial" | "none"
    p_value: float  # 1.0 when there is nothing to test
    significant: bool
    regressed: list[str] = field(default_factory=list)  # row ids: passed in the baseline, fail now
    improved: list[str] = field(default_factory=list)
    paired: int = 0  # rows present in both

    def to_json(self) -> dict:
        return {"test": self.test, "p_value": round(self.p_value, 8), "significant": self.significant,
                "regressed": list(self.regressed), "improved": list(self.improved), "paired": self.paired}


def paired_regression(current: dict[str, bool], baseline: dict[str, bool], alpha: float) -> Significance:
    """One-sided exact McNemar on the rows both runs hold (ids sorted in the lists)."""
    common = sorted(set(current) & set(baseline))
    regressed = [r for r in common if baseline[r] and not current[r]]
    improved = [r for r in common if current[r] and not baseline[r]]
    if not regressed:
        return Significance("mcnemar-exact", 1.0, False, [], improved, len(common))
    from scipy.stats import binomtest

    p = float(binomtest(len(regressed), len(regressed) + len(improved), 0.5, alternative="greater").pvalue)
    return Significance("mcnemar-exact", p, p < alpha, regressed, improved, len(common))


def rate_regression(passes: int, n: int, baseline_rate: float, alpha: float) -> Significance:
    """One-sided exact binomial: is `passes` of `n` significantly below `baseline_rate`?"""
    if n == 0 or not 0.0 < baseline_rate <= 1.0:
        return Significance("binomial", 1.0, False)
    if baseline_rate == 1.0:
        # Any failure is impossible under a perfect baseline: p = 0 when one occurs.
        p = 0.0 if passes < n else 1.0
        return Significance("binomial", p, p < alpha)
    from scipy.stats import binomtest

    p = float(binomtest(passes, n, baseline_rate, alternative="less").pvalue)
    return Significance("binomial", p, p < alpha)
