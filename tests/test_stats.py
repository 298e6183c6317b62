"""Intervals, tests and corrections of the report's tables, against hand-computed numbers (issue 15 item 1)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import stats as sst

from nasbench_suite.analysis.aggregate import group_runs
from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.analysis.stats import ci95, compare_to_best, holm, mwu_p, welch_p
from nasbench_suite.analysis.tables import build_table, to_markdown

from .test_analysis import GOOD, bench, write_run

A = [93.0, 93.5, 94.0]  # mean 93.5, s = 0.5
B = [92.0, 93.0, 94.0]  # mean 93.0, s = 1.0
C = [80.0, 81.0, 82.0]  # mean 81.0, s = 1.0


def test_t_interval_by_hand():
    half = 4.302652729911275 * 0.5 / math.sqrt(3)  # t(0.975, df=2) * s / sqrt(n)
    assert ci95(A) == pytest.approx((93.5 - half, 93.5 + half))
    assert ci95([1.0, 3.0]) == pytest.approx((2 - 12.706204736174707, 2 + 12.706204736174707))  # s/sqrt(n) = 1
    assert all(math.isnan(x) for x in ci95([5.0]))


def _welch_by_hand(a, b):
    va, vb = sst.tvar(a) / len(a), sst.tvar(b) / len(b)
    t = (sum(a) / len(a) - sum(b) / len(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * sst.t.sf(abs(t), df)


def test_welch_by_hand_and_degenerate_cases():
    # A vs B: t = 0.5 / sqrt(0.25/3 + 1/3) = 0.7746, df = 2.94: p ~ 0.50
    assert welch_p(A, B) == pytest.approx(_welch_by_hand(A, B)) and 0.45 < welch_p(A, B) < 0.55
    assert welch_p(A, C) == pytest.approx(_welch_by_hand(A, C)) and welch_p(A, C) < 0.001
    assert welch_p([54.3] * 3, [54.3] * 3) == 1.0 and welch_p([54.3] * 3, [60.0] * 3) == 0.0


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_mann_whitney_only_where_n_allows():
    assert mwu_p([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)  # the exact two-sided minimum for 4 vs 4
    assert math.isnan(mwu_p(A, C))  # 3 vs 3: the smallest possible p is 2/20 = 0.1, never below 0.05


def test_compare_to_best_not_significant_significant_and_too_small():
    comp = compare_to_best({"a": A, "b": B, "c": C, "d": [70.0, 71.0]})
    assert comp["a"].best and comp["a"].verdict == "best"
    assert comp["b"].verdict == "not significantly worse"  # the highest mean is not significantly better than b
    assert comp["c"].verdict == "significantly worse"
    assert comp["d"].verdict == "n too small to separate" and not comp["d"].tested
    assert comp["b"].p_holm == pytest.approx(holm([welch_p(B, A), welch_p(C, A)])[0])
    assert comp["c"].p_holm == pytest.approx(min(1.0, 2 * welch_p(C, A)))


def test_table_bolds_best_and_not_significantly_worse(tmp_path: Path):
    root = tmp_path / "r"
    for method, variant, values in (("gdas", "GDAS", A), ("setn", "SETN", B), ("rsps", "RSPS", C)):
        for s, v in enumerate(values):
            write_run(root, method, variant, s, [bench(v)], [GOOD])
    write_run(root, "enas", "ENAS", 0, [bench(99.0)], [GOOD])  # highest mean, but a single run
    loaded = load_runs(root)
    (group,) = group_runs(loaded.runs, loaded.epochs, loaded.records)
    md = to_markdown(build_table(group))
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "**99.00 ± –**" in rows["ENAS"]  # the best: every 3-run row is then too small to separate from it
    assert "‡" in rows["GDAS"] and "**" not in rows["GDAS"]
    (enas_dir,) = [p for p in (root / "runs").iterdir() if p.name.startswith("enas")]
    import shutil

    shutil.rmtree(enas_dir)
    loaded = load_runs(root)
    (group,) = group_runs(loaded.runs, loaded.epochs, loaded.records)
    md = to_markdown(build_table(group))
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "**93.50 ± 0.50 [92.26, 94.74]**" in rows["GDAS"]
    assert "**93.00 ± 1.00 [90.52, 95.48]**" in rows["SETN"]  # not significantly worse: bold too
    assert "**" not in rows["RSPS"].split("|")[4]  # significantly worse
    assert "Holm" in md
