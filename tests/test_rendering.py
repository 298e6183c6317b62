"""One rendering of table values, bold-best and found cells for every format (analysis/tables.py ``Markup``,
``cells``, ``found_cells_text``): the reports of a group that exercises every branch (bold and not significantly
worse, too small to separate, a mean over only some runs, a column not in the benchmark, optimum and published
rows, override labels) are byte for byte the ones the code wrote before the formats shared that code
(``tests/data/rendering/``, written by the code of commit 915a898)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasbench_suite.analysis.report import (
    build_report,
    render_csv,
    render_found_csv,
    render_html,
    render_json,
    render_latex,
    render_markdown,
)

from .test_analysis import GOOD, MIXED, SKIP, FakeBenchmark, bench, write_run

GOLDEN = Path(__file__).parent / "data" / "rendering"
RENDERERS = {
    "report.md": render_markdown,
    "tables.tex": render_latex,
    "tables.csv": render_csv,
    "found_cells.csv": render_found_csv,
    "report.json": render_json,
    "report.html": render_html,  # (without figures)
}


def every_branch(root: Path) -> None:
    """Runs whose table has every kind of value."""
    for s in range(3):
        write_run(root, "darts-v1", "DARTS-V1", s, [bench(44.3, 5.61), bench(54.3, 15.61)], [GOOD, SKIP])
    for s, (a, b) in enumerate([(93.0, 70.0), (93.5, 71.0), (94.0, 72.0)]):  # the best
        write_run(root, "gdas", "GDAS", s, [bench(a - 10, b - 10), bench(a, b)], [MIXED, GOOD])
    for s, a in enumerate([93.2, 92.8, 93.6, None]):  # not significantly worse; a cell not in the benchmark; no C100
        write_run(root, "setn", "SETN", s, [bench(80.0), bench(a) if a is not None else {}], [SKIP, MIXED])
    write_run(root, "rsps", "RSPS", 0, [bench(80.0, 50.0), bench(90.0, 60.0)], [SKIP, MIXED])  # n = 1
    for s, a in enumerate([91.0, 91.5]):  # n = 2: too small to separate
        write_run(root, "enas", "ENAS", s, [bench(80.0, 50.0), bench(a, 65.0)], [SKIP, GOOD])
    for gamma, a in (("static:0.5", 92.0), ("sig:10", 92.5)):  # override labels
        write_run(
            root, "e2nas", "E2NAS", 0, [bench(80.0, 50.0), bench(a, 70.5)], [SKIP, GOOD], overrides={"gamma": gamma}
        )


@pytest.mark.parametrize("name", list(RENDERERS))
def test_every_format_renders_as_before(tmp_path: Path, name: str):
    every_branch(tmp_path / "results")
    rep = build_report(tmp_path / "results", benchmark=FakeBenchmark(), published=True)
    rep.results, rep.created = Path("results"), "2026-01-01 00:00:00 +0000"  # (the folder and the clock vary)
    assert RENDERERS[name](rep) == (GOLDEN / name).read_text()
