"""A report from a results folder: tables per comparable group, found cells, figures, provenance, warnings.

The report reads only the store. Problems met while loading (unreadable records, missing metrics) are part of the
report, shown as a warning list at its top: a report never silently drops runs.
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import open_benchmark
from ..errors import StoreError
from ..records import RunRecord
from ..store import plain
from .aggregate import Group, group_runs
from .frames import load_runs
from .tables import (
    Table,
    build_table,
    cells,
    column_title,
    count_text,
    found_cells,
    found_cells_markdown,
    found_cells_text,
    header_lines,
    load_published,
    to_frame,
    to_latex,
    to_markdown,
)

FORMATS = ("md", "csv", "latex", "html", "json")


@dataclass
class Report:
    """Everything a rendering needs."""

    results: Path
    groups: list[Group]
    tables: list[Table]
    problems: list[str] = field(default_factory=list)
    records: dict[str, RunRecord] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %z"))


def build_report(results: Path, benchmark=None, published: bool = True) -> Report:
    """Load ``results`` and build the tables; StoreError when it holds no finished run."""
    results = Path(results)
    loaded = load_runs(results)
    if loaded.runs.empty:
        extra = f" ({len(loaded.problems)} unreadable: {'; '.join(loaded.problems)})" if loaded.problems else ""
        raise StoreError(f"no finished runs under {results}; run `nas-suite run` first{extra}")
    bench = benchmark if benchmark is None or hasattr(benchmark, "optimum") else open_benchmark(benchmark)
    pub = load_published() if published else None
    groups = group_runs(loaded.runs, loaded.epochs, loaded.records)
    problems = list(loaded.problems)
    for g in groups:
        missing = g.runs[g.runs["arch"].isna()]["run_id"].tolist()
        if missing:
            problems.append(f"runs without a final cell (left out of the cell figures): {', '.join(missing)}")
    tables = [build_table(g, bench, pub) for g in groups]
    return Report(results, groups, tables, problems, loaded.records)


# --- text formats ------------------------------------------------------------------------------------------------
def _problems_md(problems: list[str]) -> str:
    if not problems:
        return ""
    lines = [
        f"> **Warning: {len(problems)} problem(s) while loading the runs (an unreadable record is left out of the tables):**",
        ">",
    ]
    lines += [f"> - {p}" for p in problems]
    return "\n".join(lines) + "\n\n"


def render_markdown(rep: Report) -> str:
    """The whole report as Markdown."""
    out = [f"# nas-suite report\n\nResults: `{rep.results}` · {len(rep.records)} runs · generated {rep.created}\n\n"]
    out.append(_problems_md(rep.problems))
    if len(rep.groups) > 1:
        out.append(f"The runs form {len(rep.groups)} groups that are not comparable; each has its own table.\n\n")
    for g, t in zip(rep.groups, rep.tables):
        out.append(to_markdown(t))
        out.append("\n#### Found cells\n\n")
        out.append(found_cells_markdown(g))
        out.append("\n#### Provenance\n\n")
        out += [f"- {k}: {_prov_text(v)}\n" for k, v in g.provenance.items() if k != "protocol"]
        out.append(f"- protocol settings: {_prov_text(g.provenance.get('protocol', {}))}\n\n")
    return "".join(out)


def _prov_text(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={x}" for k, x in v.items()) or "–"
    if isinstance(v, list):
        return "; ".join(v) or "–"
    return str(v)


def render_csv(rep: Report) -> str:
    """All tables as one tidy CSV (group facts as columns; numbers, not formatted strings)."""
    return pd.concat([to_frame(t) for t in rep.tables], ignore_index=True).to_csv(index=False)


def render_found_csv(rep: Report) -> str:
    """Every run's found cell as CSV, with its group's facts."""
    frames = []
    for g in rep.groups:
        f = found_cells(g)
        k = g.key
        frames.append(
            f.assign(
                search_dataset=k.dataset,
                protocol=k.protocol,
                benchmark=k.benchmark,
                benchmark_fingerprint=k.fingerprint,
                epochs=k.epochs,
            )
        )
    return pd.concat(frames, ignore_index=True).to_csv(index=False)


def render_latex(rep: Report) -> str:
    """All tables as LaTeX (needs ``\\usepackage{booktabs}``)."""
    head = "% nas-suite report; needs \\usepackage{booktabs}\n"
    warn = "".join(f"% WARNING: {p}\n" for p in rep.problems)
    return head + warn + "\n".join(to_latex(t) for t in rep.tables)


def report_dict(rep: Report) -> dict[str, Any]:
    """The report as plain data (NaN -> null)."""
    groups = []
    for g, t in zip(rep.groups, rep.tables):
        groups.append(
            {
                "search_dataset": g.key.dataset,
                "protocol": g.key.protocol,
                "benchmark": g.key.benchmark,
                "benchmark_fingerprint": g.key.fingerprint,
                "epochs": g.key.epochs,
                "shared_overrides": g.shared_overrides,
                "notes": t.notes,
                "rows": [
                    {
                        "kind": r.kind,
                        "label": r.label,
                        "method": r.method,
                        "source": r.source,
                        "n": r.n,
                        "values": {
                            c: {"mean": m, "std": s, **(_run_stats(r, c) if r.kind == "run" else {})}
                            for c, (m, s) in r.values.items()
                        },
                    }
                    for r in t.rows
                ],
                "found_cells": found_cells(g).to_dict(orient="records"),
                "provenance": g.provenance,
            }
        )
    return plain(
        {
            "results": str(rep.results),
            "created": rep.created,
            "problems": rep.problems,
            "std": "sample std over seeds, ddof=1",
            "ci95": "t-interval of the mean",
            "significance": "Welch two-sided vs the column's best run row, Holm-corrected; MWU exact beside it",
            "groups": groups,
        }
    )


def _run_stats(r, c: str) -> dict[str, Any]:
    comp = r.compare.get(c)
    lo, hi = r.ci.get(c, (math.nan, math.nan))
    out = {"ci95": [lo, hi], "not_in_benchmark": r.missing.get(c, 0)}
    if comp is not None:
        out.update(vs_best=comp.verdict, p_welch=comp.p_welch, p_holm=comp.p_holm, p_mwu=comp.p_mwu)
    return out


def render_json(rep: Report) -> str:
    """The report as JSON."""
    return json.dumps(report_dict(rep), indent=1, sort_keys=False) + "\n"


# --- HTML --------------------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1300px;color:#222;
 padding:0 1em;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:14px}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td.l,th.l{text-align:left} tr.optimum td{background:#eef6ee} tr.published td{color:#555;
 background:#fafafa;font-style:italic} td.best{font-weight:bold}
code{font-size:12px} .warn{background:#fff4e5;border:2px solid #e69500;padding:.6em 1em;border-radius:4px}
.warn h2{border:0;margin:0;color:#a35a00} .facts{color:#444} .notes{font-size:13px;color:#555}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:13px;color:#555}
dl.prov dt{font-weight:bold;margin-top:.4em} dl.prov dd{margin-left:1.5em;font-size:13px;word-break:break-all}
"""

FIGURE_CAPTIONS = {
    "curves": "Benchmark test accuracy of the cell derived after each epoch; line = mean over seeds, band = lowest "
    "to highest seed.",
    "anytime": "Anytime performance: test accuracy of the current derived cell (and regret to the benchmark "
    "optimum, when known) against the run's cumulative wall-clock seconds, log x; line = mean, band = 95% "
    "t-interval over seeds (clipped to 0-100 %).",
    "losses": "Mean weight-step (train) and arch-step (valid) loss per epoch; band = lowest to highest seed.",
    "ranking": "Supernet ranking quality: Kendall tau, Spearman rho and top-10 overlap between the supernet's "
    "accuracies of a fixed sample of cells (the same for every run) and their benchmark test accuracy, "
    "measured every rank_every epochs; line = mean over seeds, band = lowest to highest seed.",
    "entropy": "Search dynamics: mean per-edge entropy of each method's architecture distribution (softmax(alpha), "
    "ENAS's controller, E2NAS's decoder P; RSPS is uniform); band = lowest to highest seed.",
    "dynamics": "Search dynamics: each op's probability on each edge after every epoch, for one seed per method.",
    "ops": "Operations on the 6 edges of the final cells, per method (counts annotated).",
    "e2nas_gamma": "E2NAS ablation: final test accuracy vs the gamma schedule; points = seeds, bar = mean.",
    "e2nas_eps": "E2NAS ablation: final test accuracy vs epsilon; points = seeds, bar = mean.",
    "cost": "Wall time per run, stacked: search epochs, then candidate selection and benchmark queries (mean over "
    "seeds; whisker = lowest to highest seed's total), device above each bar.",
}


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{_e(column_title(c))}</th>" for c in t.columns)
    rows = []
    for r in t.rows:
        tds = "".join(f"<td{' class=best' if bold else ''}>{_e(text)}</td>" for text, bold in cells(t, r))
        rows.append(f'<tr class="{r.kind}"><td class=l>{_e(r.label)}</td><td>{count_text(r)}</td>{tds}</tr>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in t.notes)
    return (
        f'<table class="main"><thead><tr><th class=l>Method</th><th>n</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table><ul class=notes>{notes}</ul>"
    )


def _found_html(g: Group) -> str:
    titles, found = found_cells_text(g)
    head = "".join(f"<th>{_e(t)}</th>" for t in titles)
    rows = []
    for label, seed, arch, *accs in found:
        tds = "".join(f"<td>{_e(a)}</td>" for a in accs)
        rows.append(
            f"<tr><td class=l>{_e(label)}</td><td>{_e(seed)}</td><td class=l><code>{_e(arch)}</code></td>{tds}</tr>"
        )
    return (
        f"<table class=found><thead><tr><th class=l>Method</th><th>seed</th><th class=l>found cell</th>{head}</tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _prov_html(g: Group) -> str:
    items = []
    for k, v in g.provenance.items():
        items.append(f"<dt>{_e(k.replace('_', ' '))}</dt><dd>{_e(_prov_text(v))}</dd>")
    return f"<dl class=prov>{''.join(items)}</dl>"


def render_html(rep: Report, figures: dict[str, dict[str, str]] | None = None) -> str:
    """A single self-contained HTML page; ``figures[group_slug][name]`` are base64 PNGs to embed."""
    figures = figures or {}
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>nas-suite report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>nas-suite report</h1>",
        f"<p class=facts>Results <code>{_e(rep.results)}</code> · {len(rep.records)} runs · "
        f"{len(rep.groups)} comparable group(s) · generated {_e(rep.created)}</p>",
    ]
    if rep.problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in rep.problems)
        parts.append(
            f"<div class=warn id=problems><h2>Warning: {len(rep.problems)} problem(s) while loading the runs</h2>"
            f"<p>An unreadable record is left out of the tables.</p><ul>{items}</ul></div>"
        )
    for g, t in zip(rep.groups, rep.tables):
        parts.append(f"<section id='{_e(g.key.slug)}'><h2>{_e(g.key.title)}</h2>")
        parts.append("<ul class=facts>" + "".join(f"<li>{_e(h)}</li>" for h in header_lines(t)) + "</ul>")
        parts.append(_table_html(t))
        for name, b64 in figures.get(g.key.slug, {}).items():
            cap = FIGURE_CAPTIONS.get(name, name)
            parts.append(
                f"<figure><img alt='{_e(name)}' src='data:image/png;base64,{b64}'><figcaption>{_e(cap)}</figcaption></figure>"
            )
        parts.append("<h3>Found cells</h3>" + _found_html(g))
        parts.append("<h3>Provenance</h3>" + _prov_html(g) + "</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
