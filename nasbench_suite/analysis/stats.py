"""Uncertainty and significance for the tables: 95% t-intervals, tests against the best row, Holm correction.

Per column, the run row with the highest mean is the best; every other run row is compared with it by Welch's
t-test (two-sided, unequal variances); the p-values of one column are Holm-corrected across the rows compared.
A row is "significantly worse" when its Holm-adjusted p is below ALPHA. Rows with fewer than MIN_N runs (or a
best row with fewer) are not tested: "n too small to separate". Mann-Whitney U (exact, two-sided) is reported
beside Welch where the sample sizes allow a p below ALPHA at all; it does not decide the bold.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sst

ALPHA = 0.05
CONFIDENCE = 0.95
MIN_N = 3


def ci95(values: Sequence[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean, ``mean ± t(0.975, n-1) * s / sqrt(n)`` (s: sample std); NaN for n < 2."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.nan, math.nan
    m, se = float(v.mean()), float(v.std(ddof=1)) / math.sqrt(len(v))
    half = float(sst.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1)) * se
    return m - half, m + half


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value; with no spread on either side, 0 when the means differ and 1 when not."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # e.g. every seed collapsed to the same cell
        return 0.0 if a[0] != b[0] else 1.0
    with warnings.catch_warnings():  # one side without spread: scipy warns about precision, the p-value holds
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sst.ttest_ind(a, b, equal_var=False).pvalue)


def mwu_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided Mann-Whitney U p-value, or NaN when the sample sizes cannot reach p < ALPHA at all."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0 or 2 / math.comb(n1 + n2, n1) >= ALPHA:
        return math.nan
    method = "exact" if len(set(a) | set(b)) == n1 + n2 else "asymptotic"  # exact needs no ties
    return float(sst.mannwhitneyu(a, b, alternative="two-sided", method=method).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given): p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j))."""
    p = list(pvalues)
    m = len(p)
    out = [math.nan] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p[k])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class Comparison:
    """One row of one column against that column's best row."""

    best: bool  # this row is the best (highest mean)
    tested: bool  # both sides have at least MIN_N runs
    p_welch: float = math.nan
    p_holm: float = math.nan
    p_mwu: float = math.nan

    @property
    def worse(self) -> bool:
        """Significantly worse than the best (Holm-adjusted Welch p < ALPHA)."""
        return self.tested and self.p_holm < ALPHA

    @property
    def verdict(self) -> str:
        if self.best:
            return "best"
        if not self.tested:
            return "n too small to separate"
        return "significantly worse" if self.worse else "not significantly worse"


def compare_to_best(samples: dict[str, Sequence[float]]) -> dict[str, Comparison]:
    """Per row label (values of one column, missing values left out): the comparison with the best row."""
    have = {k: list(v) for k, v in samples.items() if len(v)}
    if not have:
        return {}
    best = max(have, key=lambda k: float(np.mean(have[k])))
    out = {best: Comparison(best=True, tested=False)}
    tested = [k for k in have if k != best and len(have[k]) >= MIN_N and len(have[best]) >= MIN_N]
    pw = [welch_p(have[k], have[best]) for k in tested]
    for k, p, ph in zip(tested, pw, holm(pw)):
        out[k] = Comparison(False, True, p, ph, mwu_p(have[k], have[best]))
    for k in have:
        out.setdefault(k, Comparison(best=False, tested=False))
    return out
