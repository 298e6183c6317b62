"""The analysis layer: tables, figures and reports from synthetic stored runs with known values; regression check."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from nasbench_suite.analysis import render_report
from nasbench_suite.analysis.aggregate import group_runs
from nasbench_suite.analysis.figures import (
    METHOD_COLORS,
    clipped_artists,
    group_figures,
    op_counts,
    save_figure,
)
from nasbench_suite.analysis.frames import load_runs
from nasbench_suite.analysis.report import build_report
from nasbench_suite.analysis.tables import (
    build_table,
    load_published,
    to_latex,
    to_markdown,
)
from nasbench_suite.benchmarks import BenchResult
from nasbench_suite.errors import ConfigError, StoreError
from nasbench_suite.space import OPS, Cell
from nasbench_suite.store import Store

from .records import make_epoch, make_record

FP = "feedc0de12345678"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def bench(c10: float, c100: float | None = None, valid_offset: float = -3.0) -> dict:
    out = {"cifar10": {"valid": c10 + valid_offset, "test": c10}}
    if c100 is not None:
        out["cifar100"] = {"valid": c100 + valid_offset, "test": c100}
    return out


def write_run(
    root: Path,
    method: str,
    variant: str,
    seed: int,
    finals: list[dict],
    archs: list[str],
    protocol: str = "nb201",
    dataset: str = "cifar10",
    fingerprint: str = FP,
    overrides: dict | None = None,
    hparams: dict | None = None,
    total_s: float = 3600.0,
    device: str = "NVIDIA H100",
) -> str:
    """Store one finished run the way runner.build_record lays it out; ``finals[i]`` is epoch i's bench dict."""
    overrides = overrides or {}
    store = Store(root)
    tag = "".join(f"-{k}{v}" for k, v in sorted(overrides.items()))
    run_id = f"{method}--{dataset}--{protocol}--s{seed}{tag}--{fingerprint[:4]}"
    epochs = [make_epoch(i, a, b) for i, (a, b) in enumerate(zip(archs, finals))]
    store.write_metrics(run_id, epochs)
    rec = make_record(
        run_id,
        method,
        variant,
        seed,
        epochs,
        protocol=protocol,
        dataset=dataset,
        fingerprint=fingerprint,
        overrides=overrides,
        hparams=hparams,
        total_s=total_s,
        device=device,
    )
    store.write_record(rec)
    return run_id


class FakeBenchmark:
    """Duck-typed benchmark with a known optimum."""

    name = "fake-bench"
    provenance = "synthetic"
    datasets = ("cifar10", "cifar100", "ImageNet16-120")

    def __init__(self, fingerprint: str = FP):
        self._fp = fingerprint

    def fingerprint(self) -> str:
        return self._fp

    def optimum(self, dataset: str) -> BenchResult:
        return {
            "cifar10": BenchResult(91.61, 94.37),
            "cifar100": BenchResult(73.49, 73.51),
            "ImageNet16-120": BenchResult(46.77, 47.31),
        }[dataset]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """DARTS-V1: 3 seeds collapsed to skip (C10 test 54.30 each); GDAS: 3 seeds 93.0/93.5/94.0 (C100 70/71/72);
    RSPS: one run. Two epochs each; epoch-0 test accuracies are 10 lower."""
    root = tmp_path / "results"
    for s in range(3):
        write_run(
            root, "darts-v1", "DARTS-V1", s, [bench(44.30, 5.61), bench(54.30, 15.61)], [GOOD, SKIP], total_s=7200
        )
    for s, (a, b) in enumerate([(93.0, 70.0), (93.5, 71.0), (94.0, 72.0)]):
        write_run(root, "gdas", "GDAS", s, [bench(a - 10, b - 10), bench(a, b)], [MIXED, GOOD], total_s=1800 * (s + 1))
    write_run(root, "rsps", "RSPS", 0, [bench(80.0, 50.0), bench(90.0, 60.0)], [SKIP, MIXED], total_s=900)
    return root


def _group(root: Path):
    loaded = load_runs(root)
    return group_runs(loaded.runs, loaded.epochs, loaded.records), loaded


def _rows(table) -> dict:
    return {r.label: r for r in table.rows}


# --- aggregation and the main table ------------------------------------------------------------------------------
def test_aggregate_means_stds_counts(results: Path):
    groups, _ = _group(results)
    assert len(groups) == 1
    t = build_table(groups[0], FakeBenchmark(), None)
    assert t.columns == ["cifar10_valid", "cifar10_test", "cifar100_valid", "cifar100_test"]
    rows = _rows(t)
    assert [r.label for r in t.rows] == ["DARTS-V1", "GDAS", "RSPS", "optimum (fake-bench)"]
    d, g, r = rows["DARTS-V1"], rows["GDAS"], rows["RSPS"]
    assert (d.n, g.n, r.n) == (3, 3, 1)
    assert d.values["cifar10_test"] == pytest.approx((54.30, 0.0))
    assert d.values["cifar10_valid"] == pytest.approx((51.30, 0.0))
    assert g.values["cifar10_test"][0] == pytest.approx(93.5)
    assert g.values["cifar10_test"][1] == pytest.approx(0.5)  # sample std of 93, 93.5, 94 (ddof=1)
    assert g.values["cifar100_test"] == pytest.approx((71.0, 1.0))
    assert g.values["cifar100_valid"] == pytest.approx((68.0, 1.0))
    assert r.values["cifar10_test"][0] == 90.0 and math.isnan(r.values["cifar10_test"][1])
    opt = rows["optimum (fake-bench)"]
    assert opt.kind == "optimum" and opt.n is None
    assert opt.values["cifar10_test"][0] == 94.37 and opt.values["cifar100_valid"][0] == 73.49


def test_markdown_every_cell(results: Path):
    groups, _ = _group(results)
    md = to_markdown(build_table(groups[0], FakeBenchmark(), None))
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    assert cells[0] == ["Method", "n", "CIFAR-10 valid", "CIFAR-10 test", "CIFAR-100 valid", "CIFAR-100 test"]
    # 95% t-interval: mean ± t(0.975, 2) * s / sqrt(3), t = 4.302653: half-width 1.2421 (s = 0.5), 2.4841 (s = 1)
    assert cells[1] == [
        "DARTS-V1",
        "3",
        "51.30 ± 0.00 [51.30, 51.30]",
        "54.30 ± 0.00 [54.30, 54.30]",
        "12.61 ± 0.00 [12.61, 12.61]",
        "15.61 ± 0.00 [15.61, 15.61]",
    ]
    assert cells[2] == [
        "GDAS",
        "3",
        "**90.50 ± 0.50 [89.26, 91.74]**",
        "**93.50 ± 0.50 [92.26, 94.74]**",
        "**68.00 ± 1.00 [65.52, 70.48]**",
        "**71.00 ± 1.00 [68.52, 73.48]**",
    ]
    assert cells[3] == ["RSPS", "1", "87.00 ± –‡", "90.00 ± –‡", "57.00 ± –‡", "60.00 ± –‡"]  # n = 1: not tested
    assert cells[4] == ["optimum (fake-bench)", "–", "91.61", "94.37", "73.49", "73.51"]
    for fact in ("search dataset: cifar10", "protocol preset: nb201", f"fake-bench (fingerprint {FP})", "epochs: 2"):
        assert fact in md
    assert "ddof=1" in md


def test_latex_booktabs_bold_best(results: Path):
    groups, _ = _group(results)
    tex = to_latex(build_table(groups[0], FakeBenchmark(), None))
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert cmd in tex
    rows = {ln.split(" & ")[0]: ln for ln in tex.splitlines() if " & " in ln}
    assert rows["GDAS"].startswith(r"GDAS & 3 & \textbf{90.50}$\pm$0.50 {\scriptsize[89.26, 91.74]} & \textbf{93.50}")
    assert rows["DARTS-V1"].startswith(r"DARTS-V1 & 3 & 51.30$\pm$0.00 {\scriptsize[51.30, 51.30]} & 54.30")
    assert r"\textbf" not in rows["DARTS-V1"]
    assert rows["RSPS"].startswith(r"RSPS & 1 & 87.00$\pm$--$^\ddagger$ &")
    assert r"\textbf" not in rows["optimum (fake-bench)"]  # the optimum is never "best"
    assert "nb201" in tex and FP in tex and "2 epochs" in tex


def test_optimum_omitted_without_or_with_other_benchmark(results: Path):
    groups, _ = _group(results)
    assert all(r.kind == "run" for r in build_table(groups[0], None, None).rows)
    t = build_table(groups[0], FakeBenchmark("0000000000000000"), None)
    assert all(r.kind == "run" for r in t.rows)
    assert any("no optimum row" in n for n in t.notes)


def test_published_rows_labelled_by_source(results: Path):
    groups, _ = _group(results)
    pub = load_published()
    t = build_table(groups[0], None, pub)
    published = [r for r in t.rows if r.kind == "published"]
    assert len(published) == len(pub) and all("(published: " in r.label for r in published)
    e2 = next(r for r in published if r.method == "E2NAS")
    assert e2.source == "e2nas-official-runs" and e2.n == 2
    # values come from the package's CSV columns (c10_test -> cifar10_test, c100_* -> cifar100_*)
    row = pub[pub["method"] == "E2NAS"].iloc[0]
    assert e2.values["cifar10_test"] == pytest.approx((row["c10_test"], row["c10_test_std"]))
    assert e2.values["cifar100_valid"] == pytest.approx((row["c100_valid"], row["c100_valid_std"]))
    assert set(e2.values) == set(t.columns)  # no ImageNet column: our runs have none
    md = to_markdown(t)
    resnet = next(ln for ln in md.splitlines() if ln.startswith("| ResNet (published"))
    assert f"| {row['c10_valid']:.2f} ± {row['c10_valid_std']:.2f}" not in resnet and "| 93.97 |" in resnet
    # best is taken over our runs only, even though published rows are higher
    assert "**93.50 ± 0.50 [92.26, 94.74]**" in md


def test_groups_never_mix_protocol_dataset_benchmark(tmp_path: Path):
    root = tmp_path / "r"
    write_run(root, "gdas", "GDAS", 0, [bench(90.0)], [GOOD], protocol="nb201")
    write_run(root, "gdas", "GDAS", 1, [bench(92.0)], [GOOD], protocol="nb201")
    write_run(root, "gdas", "GDAS", 0, [bench(50.0)], [SKIP], protocol="quick")
    write_run(root, "gdas", "GDAS", 0, [bench(60.0)], [SKIP], dataset="cifar100")
    write_run(root, "gdas", "GDAS", 0, [bench(70.0)], [SKIP], fingerprint="beefbeefbeefbeef")
    groups, _ = _group(root)
    keys = {(g.key.dataset, g.key.protocol, g.key.fingerprint): g for g in groups}
    assert len(groups) == 4 and len(keys) == 4
    means = {k: build_table(g).rows[0].values["cifar10_test"][0] for k, g in keys.items()}
    assert means == {
        ("cifar10", "nb201", FP): 91.0,
        ("cifar10", "quick", FP): 50.0,
        ("cifar100", "nb201", FP): 60.0,
        ("cifar10", "nb201", "beefbeefbeefbeef"): 70.0,
    }
    md = render_report(root, "md", published=False)
    assert md.count("### search on") == 4 and "not comparable" in md


def test_differing_overrides_get_own_rows_shared_ones_in_header(tmp_path: Path):
    root = tmp_path / "r"
    for s, acc in enumerate([90.0, 92.0]):
        write_run(root, "e2nas", "E2NAS", s, [bench(acc)], [GOOD], overrides={"gamma": "sig:10", "C": "8"})
    write_run(root, "e2nas", "E2NAS", 0, [bench(80.0)], [GOOD], overrides={"gamma": "static:0.5", "C": "8"})
    groups, _ = _group(root)
    t = build_table(groups[0])
    rows = _rows(t)
    assert set(rows) == {"E2NAS [gamma=sig:10]", "E2NAS [gamma=static:0.5]"}
    assert rows["E2NAS [gamma=sig:10]"].values["cifar10_test"][0] == 91.0
    assert any("overrides C=8" in n for n in t.notes)


def test_csv_and_json_formats(results: Path, tmp_path: Path):
    out = tmp_path / "out"
    text = render_report(results, "csv", out=out, benchmark=FakeBenchmark(), published=False)
    df = pd.read_csv(out / "tables.csv")
    assert text == (out / "tables.csv").read_text()
    g = df[df["label"] == "GDAS"].iloc[0]
    assert (g["kind"], g["n"], g["protocol"], g["search_dataset"]) == ("run", 3, "nb201", "cifar10")
    assert g["cifar10_test_mean"] == pytest.approx(93.5) and g["cifar10_test_std"] == pytest.approx(0.5)
    assert df[df["kind"] == "optimum"].iloc[0]["cifar10_test_mean"] == 94.37
    found = pd.read_csv(out / "found_cells.csv")
    assert len(found) == 7 and set(found["arch"]) == {SKIP, GOOD, MIXED}
    data = json.loads(render_report(results, "json", published=False))
    (grp,) = data["groups"]
    assert grp["protocol"] == "nb201" and grp["benchmark_fingerprint"] == FP
    rsps = next(r for r in grp["rows"] if r["label"] == "RSPS")
    assert rsps["values"]["cifar10_test"]["mean"] == 90.0 and rsps["values"]["cifar10_test"]["std"] is None
    assert grp["provenance"]["code_version"] == ["abc123def456"]


def test_found_cells_table(results: Path):
    md = render_report(results, "md", published=False)
    found = md.split("#### Found cells")[1].split("####")[0]
    rows = [ln for ln in found.splitlines() if ln.startswith("| ") and "seed" not in ln]
    assert len(rows) == 7
    assert f"| DARTS-V1 | 2 | `{SKIP.replace('|', chr(92) + '|')}` | 54.30 | 15.61 |" in rows


def test_unreadable_record_is_reported(results: Path, tmp_path: Path):
    bad = results / "runs" / "broken-run"
    bad.mkdir(parents=True)
    (bad / "record.json").write_text("{ not json")
    md = render_report(results, "md", published=False)
    assert "Warning: 1 problem(s)" in md and "broken-run" in md
    html = render_report(results, "html", published=False)
    assert "id=problems" in html and "broken-run" in html
    assert "broken-run" in render_report(results, "latex", published=False)


def test_missing_metrics_is_reported(results: Path):
    rid = Store(results).run_ids()[0]
    Store(results).metrics_path(rid).unlink()
    assert f"run {rid} has no per-epoch metrics" in render_report(results, "md", published=False)


def test_empty_results_is_a_store_error(tmp_path: Path):
    with pytest.raises(StoreError, match="no finished runs under .*nas-suite run"):
        render_report(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="unknown report format"):
        render_report(tmp_path, "docx")


# --- figures -----------------------------------------------------------------------------------------------------
def test_figures_from_stored_runs(results: Path, tmp_path: Path):
    groups, loaded = _group(results)
    figs = group_figures(groups[0], loaded.records)
    assert set(figs) == {"curves", "anytime", "losses", "ops", "cost"}  # no E2NAS runs -> no ablation figures
    curves = figs["curves"].axes
    assert len(curves) == 2  # CIFAR-10 and CIFAR-100
    for ax in curves:
        assert ax.get_xlabel() == "search epoch" and "test accuracy" in ax.get_ylabel()
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert set(lines) == {"DARTS-V1", "GDAS", "RSPS"}
        assert len(ax.collections) == 3  # one band per variant
    gdas = {ln.get_label(): ln for ln in curves[0].get_lines()}["GDAS"]
    assert list(gdas.get_xdata()) == [1, 2] and list(gdas.get_ydata()) == pytest.approx([83.5, 93.5])
    # the band runs from the lowest to the highest seed (83..84 after epoch 1, 93..94 after 2), never beyond
    band = curves[0].collections[1].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(83.0) and band.max() == pytest.approx(94.0)
    cost = figs["cost"].axes[0]
    assert cost.get_ylabel() == "search wall time (hours)"
    # stacked: search epochs (search_s = total - 10 s), then selection + queries (10 s)
    heights = [p.get_height() for p in cost.patches]
    assert heights[0::2] == pytest.approx([7190 / 3600, (1790 + 3590 + 5390) / 3 / 3600, 890 / 3600])
    assert heights[1::2] == pytest.approx([10 / 3600] * 3)
    assert cost.get_ylim()[0] == 0
    assert "NVIDIA H100" in [t.get_text() for t in cost.texts]
    for name, fig in figs.items():
        assert clipped_artists(fig) == [], name
    # one colour per method, the same in every figure
    colors = {ln.get_label(): ln.get_color() for ln in curves[0].get_lines()}
    assert colors["GDAS"] == METHOD_COLORS["gdas"] and colors["DARTS-V1"] == METHOD_COLORS["darts-v1"]
    assert len(set(map(tuple, colors.values()))) == 3
    for name, fig in figs.items():
        for p in save_figure(fig, tmp_path / "figs", name):
            assert p.stat().st_size > 1000


def test_op_distribution_shows_skip_collapse(results: Path):
    groups, loaded = _group(results)
    counts = op_counts(groups[0].runs)
    assert list(counts.columns) == list(OPS)
    assert counts.loc["DARTS-V1"].to_dict() == {
        "none": 0,
        "skip_connect": 18,
        "nor_conv_1x1": 0,
        "nor_conv_3x3": 0,
        "avg_pool_3x3": 0,
    }
    assert counts.loc["GDAS", "nor_conv_3x3"] == 15 and counts.loc["GDAS", "skip_connect"] == 3
    assert (counts.sum(axis=1) == [18, 18, 6]).all()
    ax = group_figures(groups[0], loaded.records)["ops"].axes[0]
    assert ax.get_xlabel() and ax.get_title() == "Operations in the found cells"
    assert len(ax.patches) == len(OPS) * 3  # one bar segment per op and variant
    # each variant's segments are the op shares of its final cells' edges, drawn in OPS order
    widths = np.array([p.get_width() for p in ax.patches]).reshape(len(OPS), 3)
    shares = (counts.T / counts.sum(axis=1)).to_numpy()
    assert np.allclose(widths, shares)
    assert np.allclose(widths.sum(axis=0), 1.0)


def test_e2nas_ablation_figures(tmp_path: Path):
    root = tmp_path / "r"
    settings = [("static:0.5", 0.5), ("sig:10", 0.5), ("static:0.1", 0.5), ("sig:10", 0.0)]
    for g, e in settings:
        for s in range(2):
            acc = 90.0 + s + (2 if g == "sig:10" else 0) - (3 if e == 0.0 else 0)
            write_run(
                root,
                "e2nas",
                "E2NAS",
                s,
                [bench(acc)],
                [GOOD],
                overrides={"gamma": g, "eps": str(e)},
                hparams={"gamma": g, "eps": e},
            )
    groups, loaded = _group(root)
    figs = group_figures(groups[0], loaded.records)
    assert {"e2nas_gamma", "e2nas_eps"} <= set(figs)
    ax = figs["e2nas_gamma"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["static:0.1", "static:0.5", "sig:10"]
    assert ax.get_xlabel() == "gamma schedule" and "test accuracy" in ax.get_ylabel()
    from matplotlib.collections import PathCollection

    points = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert len(points) == 8  # every seed is a point
    assert sorted(points[:, 1]) == [89.0, 90.0, 90.0, 90.0, 91.0, 91.0, 92.0, 93.0]
    ax = figs["e2nas_eps"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0", "0.5"]


def test_html_report_self_contained(results: Path, tmp_path: Path):
    out = tmp_path / "html"
    text = render_report(results, "html", out=out, benchmark=FakeBenchmark())
    page = (out / "report.html").read_text()
    assert page == text
    assert page.count("data:image/png;base64,") == 5
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for fact in (SKIP, "abc123def456", "synthetic test table", FP, "/data", "optimum (fake-bench)", "(published: "):
        assert fact in page
    slug = build_report(results).groups[0].key.slug
    for name in ("curves", "anytime", "losses", "ops", "cost"):
        assert (out / f"{slug}-{name}.png").stat().st_size > 1000
        assert (out / f"{slug}-{name}.pdf").stat().st_size > 1000


def test_render_report_writes_each_format(results: Path, tmp_path: Path):
    for fmt, name in [("md", "report.md"), ("latex", "tables.tex"), ("json", "report.json")]:
        text = render_report(results, fmt, out=tmp_path / fmt, published=False)
        assert (tmp_path / fmt / name).read_text() == text


# --- regression --------------------------------------------------------------------------------------------------
# A tiny plan so the regression test stays quick; the shipped baseline uses the default (quick, epochs=2).
TINY = {
    "protocol": "quick",
    "seed": 0,
    "overrides": {
        "epochs": "2",
        "steps_per_epoch": "2",
        "select_candidates": "4",
        "batch_size": "16",
        "select_batch_size": "16",
        "derive_every": "1",
    },
}  # every epoch's cell is checked
METHODS = ["rsps", "darts-v1"]


slow = pytest.mark.slow  # each regression test runs real (tiny) searches: ~5-20 s on 2 CPU cores


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    from nasbench_suite.analysis import regress

    base = tmp_path_factory.mktemp("regression")
    rep = regress(base, update=True, methods=METHODS, plan=TINY)
    assert rep.updated == METHODS and rep.ok
    return base


@slow
def test_regress_green_on_fresh_baseline(baseline: Path, tmp_path: Path):
    from nasbench_suite.analysis import regress

    plan = json.loads((baseline / "plan.json").read_text())
    assert plan["overrides"] == TINY["overrides"] and plan["rtol"] == 1e-10 and plan["atol"] == 1e-10
    assert plan["machine"]["isa"] and plan["machine"]["torch"] == torch.__version__  # where the baseline came from
    facts = json.loads((baseline / "rsps.json").read_text())
    assert [e["epoch"] for e in facts["epochs"]] == [0, 1]
    Cell.parse(facts["final_arch"])
    assert set(facts["epochs"][0]) == {"epoch", "arch", "train_loss", "valid_loss"} and facts["machine"]["cpu"]
    rep = regress(baseline, methods=METHODS, workdir=tmp_path / "work")
    assert rep.ok, rep.format()
    assert rep.checked == METHODS and "OK: no regression" in rep.format()
    assert "ran on: " in rep.format() and "baseline written on: " in rep.format()


@slow
def test_regress_red_when_derive_changes(baseline: Path, monkeypatch):
    from nasbench_suite.analysis import regress
    from nasbench_suite_baselines.rsps import RSPS

    original = RSPS.derive

    def other_cell(self, epoch):
        cell = original(self, epoch)
        return cell.with_op(0, (cell.ops[0] + 1) % len(OPS))

    monkeypatch.setattr(RSPS, "derive", other_cell)
    rep = regress(baseline, methods=["rsps"])
    assert not rep.ok
    arch_diffs = [d for d in rep.diffs if d.field == "arch"]
    assert [d.epoch for d in arch_diffs] == [0, 1, None]
    text = rep.format()
    assert "REGRESSION" in text and "rsps epoch 0 arch: expected '|" in text and "got '|" in text


@slow
def test_regress_red_when_losses_change(baseline: Path, monkeypatch):
    from nasbench_suite.analysis import regress
    from nasbench_suite_baselines.darts_v1 import DartsV1

    original = DartsV1.search_step

    def shifted(self, *a, **k):
        out = original(self, *a, **k)
        return {**out, "train_loss": out["train_loss"] * (1 + 1e-3)}

    monkeypatch.setattr(DartsV1, "search_step", shifted)
    rep = regress(baseline, methods=["darts-v1"])
    assert not rep.ok and {d.field for d in rep.diffs} == {"train_loss"}
    assert "darts-v1 epoch 0 train_loss: expected" in rep.format()


@slow
def test_regress_reports_method_absent_from_baseline(baseline: Path, tmp_path: Path):
    from nasbench_suite.analysis import regress

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "plan.json").write_text((baseline / "plan.json").read_text())
    (partial / "rsps.json").write_text((baseline / "rsps.json").read_text())
    (partial / "ghost-method.json").write_text((baseline / "rsps.json").read_text())
    rep = regress(partial)  # every registered method
    assert not rep.ok
    assert "darts-v1" in rep.not_in_baseline and "rsps" in rep.checked
    assert rep.not_registered == ["ghost-method"]
    assert "darts-v1: registered but absent from the baseline" in rep.format()


@slow
def test_regress_without_baseline_or_with_plan_change(tmp_path: Path, baseline: Path):
    from nasbench_suite.analysis import regress

    with pytest.raises(StoreError, match="no regression baseline"):
        regress(tmp_path / "none")
    with pytest.raises(ConfigError):
        regress(baseline, plan=TINY)
    with pytest.raises(ConfigError, match="needs all methods"):
        regress(baseline, update=True, methods=["rsps"], plan={**TINY, "seed": 1})


@slow
def test_regress_reports_a_method_that_cannot_run(baseline: Path, monkeypatch):
    from nasbench_suite.analysis import regress
    from nasbench_suite_baselines.rsps import RSPS

    def broken_setup(self, ctx):
        raise ConfigError("weights for rsps not found: train them first")

    monkeypatch.setattr(RSPS, "setup", broken_setup)
    rep = regress(baseline, methods=["rsps", "darts-v1"])
    assert not rep.ok and rep.errors == {"rsps": "weights for rsps not found: train them first"}
    assert rep.checked == ["darts-v1"] and not rep.diffs
    assert "FAIL rsps: could not run: weights for rsps not found" in rep.format()


# --- a partial benchmark (issue 18 item 1) ------------------------------------------------------------------------
def test_partial_benchmark_keeps_every_column(nats_fixture_dir: Path, tmp_path: Path):
    """A real run looked up in the 3-cell NATS fixture finds a cell outside it: the report keeps every column of
    the benchmark (its 3 datasets x valid/test), with the optimum's and the published rows' numbers."""
    from click.testing import CliRunner

    from nasbench_suite.benchmarks import open_benchmark
    from nasbench_suite.cli import cli

    root = tmp_path / "results"
    sets = ["--set", "epochs=1", "--set", "steps_per_epoch=2", "--set", "select_candidates=2"]
    res = CliRunner().invoke(
        cli,
        ["run", "--methods", "rsps", "--benchmark", str(nats_fixture_dir), "--results", str(root), "--quiet", *sets],
    )
    assert res.exit_code == 0, res.output
    bench = open_benchmark(nats_fixture_dir)
    rep = build_report(root, benchmark=bench)
    (table,) = rep.tables
    expected = [f"{ds}_{m}" for ds in ("cifar10", "cifar100", "ImageNet16-120") for m in ("valid", "test")]
    assert table.columns == expected
    md = render_report(root, "md", benchmark=bench)
    head = next(line for line in md.splitlines() if line.startswith("| Method | n"))
    assert head.count("|") == 2 + len(expected) + 1
    run_line = next(line for line in md.splitlines() if line.startswith("| RSPS | 1 |"))
    assert run_line.count("not in benchmark") == 6
    opt = next(r for r in table.rows if r.kind == "optimum")
    assert opt.values["cifar10_test"][0] == pytest.approx(bench.optimum("cifar10").test)
    assert all(not math.isnan(opt.values[c][0]) for c in expected)
    assert any(r.kind == "published" and not math.isnan(r.values["cifar100_test"][0]) for r in table.rows)
    assert "1 found cell(s) are not in the benchmark" in md
    found = md.split("#### Found cells")[1]
    assert "ImageNet16-120 test" in found and found.count("not in benchmark") == 3


def test_anytime_curves_step_functions_band_and_regret(tmp_path: Path):
    """Anytime: each seed's accuracy holds from its epoch's end to the next (cumulative seconds 11, 22); the mean
    over seeds and the 95% t-band; regret = optimum - accuracy (issue 15 item 4)."""
    from nasbench_suite.analysis.figures import anytime_curves

    root = tmp_path / "r"
    for s, (a, b) in enumerate([(80.0, 90.0), (82.0, 92.0), (84.0, 94.0)]):
        write_run(root, "gdas", "GDAS", s, [bench(a), bench(b)], [MIXED, GOOD])
    groups, _ = _group(root)
    fig = anytime_curves(groups[0].epochs, ["cifar10"], {"cifar10": 94.37})
    acc, regret = fig.axes[0], fig.axes[1]
    assert acc.get_xscale() == "log" and "wall-clock" in acc.get_xlabel()
    (line,) = acc.get_lines()
    x, y = line.get_xdata(), line.get_ydata()
    assert x[0] == pytest.approx(11.0) and x[-1] == pytest.approx(22.0)
    assert y[0] == pytest.approx(82.0) and y[-1] == pytest.approx(92.0)  # mean of 80/82/84, then of 90/92/94
    band = acc.collections[0].get_paths()[0].vertices[:, 1]
    half = 4.302652729911275 * 2.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(3), s = 2
    assert band.max() == pytest.approx(92.0 + half) and band.min() == pytest.approx(82.0 - half)
    assert regret.get_lines()[0].get_ydata()[-1] == pytest.approx(94.37 - 92.0)
    assert clipped_artists(fig) == []


def test_python_api_is_what_the_report_uses(results: Path, monkeypatch):
    """ns.load_runs returns every recorded epoch key; ns.report renders what the CLI does; the report code reads
    the store only through ns.load_runs (issue 15 item 5)."""
    import nasbench_suite as ns
    import nasbench_suite.analysis.report as report_mod

    loaded = ns.load_runs(results)
    assert len(loaded.runs) == 7 and {"lr", "search_s", "elapsed_s"} <= set(loaded.epochs.columns)
    # one "generated" time for both (the two renderings may fall on either side of a second's boundary)
    monkeypatch.setattr(report_mod, "time", SimpleNamespace(strftime=lambda fmt: "2026-01-01 00:00:00 +0000"))
    assert ns.report(results, published=False) == render_report(results, "md", published=False)
    calls = []
    monkeypatch.setattr(report_mod, "load_runs", lambda p: calls.append(p) or ns.load_runs(p))
    ns.report(results, format="json")
    assert calls == [Path(results)]
    assert ns.open_benchmark(None).name.startswith("embedded")
