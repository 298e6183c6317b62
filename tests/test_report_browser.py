"""The HTML report opened in headless Chromium: it renders (a non-blank screenshot) without console errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nasbench_suite.analysis import render_report

from .conftest import skip_unless_ci
from .test_analysis import GOOD, MIXED, SKIP, FakeBenchmark, bench, write_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    skip_unless_ci("headless Chromium is not installed (apt-get install -y chromium); the HTML report is not checked in a browser")


def test_html_report_renders_in_chromium(tmp_path: Path):
    chromium = _chromium()
    root = tmp_path / "results"
    for s in range(3):
        write_run(root, "darts-v1", "DARTS-V1", s, [bench(44.3, 5.6), bench(54.3, 15.6)], [GOOD, SKIP], total_s=7200)
        write_run(root, "gdas", "GDAS", s, [bench(83.0 + s, 60.0), bench(93.0 + s / 2, 70.0 + s)], [MIXED, GOOD])
    bad = root / "runs" / "broken-run"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{ not json")
    out = tmp_path / "report"
    render_report(root, "html", out=out, benchmark=FakeBenchmark())
    page = out / "report.html"
    shot = tmp_path / "shot.png"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1400,2000",
        "--hide-scrollbars", page.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
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
