"""The HTML report opened in headless Chromium: it renders (a non-blank screenshot) without console errors."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nasbench_suite.analysis import render_report

from .conftest import skip_unless_ci
from .test_analysis import GOOD, MIXED, SKIP, FakeBenchmark, bench, write_run

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    skip_unless_ci(
        "headless Chromium is not installed (apt-get install -y chromium); the HTML report is not checked in a browser"
    )


WIDTH = 1400  # a laptop's browser window
GAMMAS = ("static:0", "static:0.5", "sig:1", "sig:10", "sig:20")
# The page reports where each figure lands at WIDTH px, so the test can see a figure wider than the page.
PROBE = """<script>window.addEventListener('load', () => { const out = [...document.images].map(i => {
 const r = i.getBoundingClientRect(); return {alt: i.alt, left: r.left, right: r.right, natural: i.naturalWidth,
 shown: r.width}; }); const rows = [...document.querySelectorAll('table tr')].map(tr => ({text: tr.innerText,
 height: tr.getBoundingClientRect().height, font: parseFloat(getComputedStyle(tr).fontSize)}));
 const p = document.createElement('pre'); p.id = 'probe'; p.textContent = JSON.stringify({
 page: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth, images: out, rows: rows});
 document.body.appendChild(p); });</script>"""


def _runs(root: Path) -> None:
    for s in range(3):
        write_run(root, "darts-v1", "DARTS-V1", s, [bench(44.3, 5.6), bench(54.3, 15.6)], [GOOD, SKIP], total_s=7200)
        write_run(root, "gdas", "GDAS", s, [bench(83.0 + s, 60.0), bench(93.0 + s / 2, 70.0 + s)], [MIXED, GOOD])
        write_run(root, "rsps", "RSPS", s, [bench(80.0 + s, 50.0), bench(85.0, 55.0 + s)], [SKIP, MIXED], total_s=900)
    for g in GAMMAS:  # a gamma grid (5 points) at one eps: the gamma ablation is drawn, the eps one is not
        for s in range(2):
            write_run(
                root,
                "e2nas",
                "E2NAS",
                s,
                [bench(88.0 + s), bench(90.0 + s + len(g) / 4, 70.0)],
                [GOOD, MIXED],
                overrides={"gamma": g},
                hparams={"gamma": g, "eps": 0.5},
            )
    bad = root / "runs" / "broken-run"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{ not json")


def _chrome(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={WIDTH},3000",
        "--hide-scrollbars",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_figures_fit_and_keep_method_colours(tmp_path: Path):
    """Every figure of the report: nothing drawn outside its canvas (legends included), one colour per method in
    every figure, and an ablation only where it has at least two points."""
    from nasbench_suite.analysis.aggregate import group_runs
    from nasbench_suite.analysis.figures import (
        METHOD_COLORS,
        clipped_artists,
        group_figures,
    )
    from nasbench_suite.analysis.frames import load_runs

    root = tmp_path / "results"
    _runs(root)
    loaded = load_runs(root)
    (group,) = group_runs(loaded.runs, loaded.epochs, loaded.records)
    figs = group_figures(group, loaded.records)
    assert set(figs) == {"curves", "anytime", "losses", "ops", "cost", "e2nas_gamma"}  # eps: one value, no plot
    for name, fig in figs.items():
        assert clipped_artists(fig) == [], f"{name}: drawn outside the figure"
    curves = figs["curves"].axes[0]
    colors = {ln.get_label(): ln.get_color() for ln in curves.get_lines()}
    for label, method in (("DARTS-V1", "darts-v1"), ("GDAS", "gdas"), ("RSPS", "rsps")):
        assert colors[label] == METHOD_COLORS[method]
    e2 = [c for lab, c in colors.items() if lab.startswith("E2NAS")]
    assert len(e2) == len(GAMMAS) and len(set(map(tuple, e2))) == len(GAMMAS)  # shades of one hue
    others = [tuple(METHOD_COLORS[m]) for m in ("darts-v1", "gdas", "rsps")]
    assert not set(map(tuple, e2)) & set(others)
    cost = figs["cost"].axes[0]
    bars = [tuple(p.get_facecolor()[:3]) for p in cost.patches[0::2]]  # the search part of each stacked bar
    assert bars[:3] == [tuple(METHOD_COLORS[m]) for m in ("darts-v1", "gdas", "rsps")]
    labels = [t.get_text() for t in figs["e2nas_gamma"].axes[0].get_xticklabels()]
    assert labels == list(GAMMAS)  # static before sigmoid, numerically


def test_html_report_renders_in_chromium(tmp_path: Path):
    chromium = _chromium()
    root = tmp_path / "results"
    _runs(root)
    out = tmp_path / "report"
    render_report(root, "html", out=out, benchmark=FakeBenchmark())
    page = out / "report.html"
    shot = tmp_path / "shot.png"
    proc = _chrome(chromium, tmp_path, f"--screenshot={shot}", page.as_uri())
    log = proc.stdout + proc.stderr
    assert shot.exists(), f"no screenshot; chromium said:\n{log[-3000:]}"
    for marker in ("Uncaught", "ERROR:CONSOLE", "Failed to load resource"):
        assert marker not in log, f"console error in the report page:\n{log[-3000:]}"

    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.05, "screenshot is blank"
    # the warning box (orange) and the figures (coloured lines/bars) make the page more than black on white
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    assert float(np.mean(saturation > 0.2)) > 0.001
    if os.environ.get("NAS_SUITE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["NAS_SUITE_KEEP_SCREENSHOT"])

    # Where the figures land at WIDTH px: each one whole inside the page, none wider than the page.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chrome(chromium, tmp_path, "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"the page did not report its layout:\n{dom[-2000:]}"
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["scroll"] <= layout["page"], "the page scrolls sideways at a laptop width"
    alts = [i["alt"] for i in layout["images"]]
    assert set(alts) == {"curves", "anytime", "losses", "ops", "cost", "e2nas_gamma"}
    for img in layout["images"]:
        assert img["left"] >= 0 and img["right"] <= layout["page"], f"figure {img['alt']} is cut at the page's edge"
        assert img["natural"] > 0 and img["shown"] > 0
        # readable: shown at least 480 px wide (or whole, if the figure is smaller than that)
        assert img["shown"] >= min(480, img["natural"]) - 1, f"figure {img['alt']} shrunk to {img['shown']:.0f} px"
    # what a reader sees of the table: a rendered row per method, with its numbers, in a readable font
    shown = [r for r in layout["rows"] if r["height"] > 0]
    for label in ("DARTS-V1", "GDAS", "RSPS", "E2NAS"):
        row = next((r for r in shown if r["text"].split("\t")[0].strip().startswith(label)), None)
        assert row is not None, f"no rendered table row for {label}: {[r['text'][:40] for r in shown]}"
        assert re.search(r"\d+\.\d\d ± \d+\.\d\d", row["text"]), row["text"]
        assert row["font"] >= 11, f"{label}'s row is set in {row['font']} px"
