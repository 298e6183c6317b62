"""The paper-style tables: one per comparable group, as Markdown, LaTeX (booktabs) and tidy CSV.

A table has three kinds of rows: ``run`` (our runs, aggregated over seeds), ``optimum`` (the best valid and the
best test accuracy in the benchmark, each maximised independently) and ``published`` (numbers reported
elsewhere, labelled by source). "Best" (bold) is the highest mean among the ``run`` rows of a column.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import StoreError
from .aggregate import METRICS, RANK_COLUMN, STD_DDOF, Group, aggregate
from .stats import ALPHA, MIN_N, Comparison, compare_to_best

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "ImageNet16-120": "ImageNet16-120"}
#: published CSV column prefix -> benchmark dataset key
PUBLISHED_PREFIX = {"c10": "cifar10", "c100": "cifar100", "in16": "ImageNet16-120"}
NOT_IN_BENCH = "not in benchmark"
PARTIAL_MARK = "†"
SEP_MARK = "‡"
STD_NOTE = (
    "mean ± std [95% CI] over seeds; std is the sample standard deviation (ddof=1); the interval is the t-interval "
    "of the mean; '–' where a row has a single run (std undefined) or no value"
)
SIG_NOTE = (
    "bold: per column the best mean and every row not significantly worse than it (Welch's t-test, two-sided, "
    f"Holm-corrected across the rows, alpha {ALPHA}); {SEP_MARK} n < {MIN_N} on either side: too small to separate "
    "from the best (not tested, not bold)"
)
DASH = "–"
RANK_NOTE = (
    "ranking τ: Kendall tau between the supernet's accuracies of a fixed sample of cells (the same for every run; "
    "protocol key rank_cells) and their benchmark test accuracy, measured after the last epoch; higher = the "
    "shared weights rank cells more like the benchmark (nasbench_suite/ranking.py)"
)


@dataclass
class Row:
    """One table row. ``values[col] = (mean, std)`` for each ``<dataset>_<metric>`` column."""

    kind: str  # "run" | "optimum" | "published"
    label: str
    n: int | None
    values: dict[str, tuple[float, float]]
    method: str = ""
    source: str = ""
    #: run rows: per column, how many of the row's runs have no value (their found cell is not in the benchmark)
    missing: dict[str, int] = field(default_factory=dict)
    #: run rows: per column, the 95% t-interval of the mean
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: run rows: per column, the comparison with the column's best run row
    compare: dict[str, Comparison] = field(default_factory=dict)


@dataclass
class Table:
    """A main table of one group, with the facts it must state."""

    group: Group
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def best(self, col: str) -> float | None:
        """The highest ``run``-row mean of ``col`` (None when no run row has a value)."""
        vals = [r.values[col][0] for r in self.rows if r.kind == "run" and not _nan(r.values.get(col, (math.nan,))[0])]
        return max(vals) if vals else None


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """Published results (the package's own ``published.csv`` unless ``path`` is given).

    Columns as in the reference file: ``source, provenance, method, c10_valid, c10_valid_std, ..., n_runs,
    verified``. Each source states its own std convention (the E2NAS row is a population std, ddof=0).
    """
    try:
        if path is None:
            text = resources.files("nasbench_suite.analysis").joinpath("published.csv").read_text()
            df = pd.read_csv(io.StringIO(text))
        else:
            df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise StoreError(f"published results file {path or 'published.csv'} is unreadable ({e})") from None
    need = {"source", "method", "n_runs"} | {f"{p}_{m}" for p in PUBLISHED_PREFIX for m in METRICS}
    missing = need - set(df.columns)
    if missing:
        raise StoreError(f"published results file {path} lacks columns {', '.join(sorted(missing))}")
    return df


def _published_rows(df: pd.DataFrame, columns: list[str]) -> list[Row]:
    rows = []
    for _, r in df.iterrows():
        values = {}
        for prefix, ds in PUBLISHED_PREFIX.items():
            for m in METRICS:
                col = f"{ds}_{m}"
                if col in columns:
                    values[col] = (_float(r.get(f"{prefix}_{m}")), _float(r.get(f"{prefix}_{m}_std")))
        rows.append(
            Row(
                "published",
                f"{r['method']} (published: {r['source']})",
                int(r["n_runs"]),
                values,
                method=str(r["method"]),
                source=str(r["source"]),
            )
        )
    return rows


def _float(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


def build_table(group: Group, benchmark=None, published: pd.DataFrame | None = None) -> Table:
    """The main table of ``group``: run rows, the optimum row when ``benchmark`` is the runs' benchmark,
    and the published rows when given."""
    columns = group.table_columns
    agg = aggregate(group)
    rows = [
        Row(
            "run",
            r["label"],
            int(r["n"]),
            {c: (r[f"{c}_mean"], r[f"{c}_std"]) for c in columns},
            method=r["method"],
            missing={c: int(r["n"]) - int(r[f"{c}_n"]) for c in group.bench_columns},  # (ranking: never "not in")
            ci={c: (r[f"{c}_ci_lo"], r[f"{c}_ci_hi"]) for c in columns},
        )
        for _, r in agg.iterrows()
    ]
    for c in columns:
        comp = compare_to_best({r["label"]: r[f"{c}_values"] for _, r in agg.iterrows()})
        for row in rows:
            if row.label in comp:
                row.compare[c] = comp[row.label]
    notes = [STD_NOTE, SIG_NOTE]
    outside = sorted({a for c in group.bench_columns for a in group.runs.loc[group.missing(c), "arch"].dropna()})
    if outside:
        notes.append(
            f"{len(outside)} found cell(s) are not in the benchmark: shown as '{NOT_IN_BENCH}'; {PARTIAL_MARK} marks a "
            "mean over only the runs whose cell is in it"
        )
    if RANK_COLUMN in columns:
        notes.append(RANK_NOTE)
    notes += group_warnings(group)
    if group.shared_overrides:
        notes.append("every run used overrides " + ", ".join(f"{k}={v}" for k, v in group.shared_overrides.items()))
    if benchmark is not None:
        _add_optimum(rows, notes, group, columns, benchmark)
    if published is not None and len(published):
        rows.extend(_published_rows(published, columns))
        notes.append(
            "published rows are numbers reported by their source (NB201 protocol, CIFAR-10 search, 200-epoch "
            "benchmark results) with the source's own std convention; comparable only under the same protocol "
            "and benchmark"
            + (
                ""
                if (group.key.dataset, group.key.protocol) == ("cifar10", "nb201")
                else f"; these runs searched {group.key.dataset} under protocol {group.key.protocol}, so the search "
                "data differs even where the benchmark numbers are the same kind"
            )
        )
    return Table(group, columns, rows, notes)


def _add_optimum(rows: list[Row], notes: list[str], group: Group, columns: list[str], benchmark) -> None:
    """The optimum row when ``benchmark`` is the one the runs were looked up in, else a note saying why not."""
    fp = benchmark.fingerprint()
    if fp != group.key.fingerprint:
        notes.append(
            f"no optimum row: the given benchmark {benchmark.name} ({fp}) is not the one these runs "
            f"were looked up in ({group.key.fingerprint})"
        )
        return
    values = {}
    for c in columns:
        ds, m = c.rsplit("_", 1)
        opt = benchmark.optimum(ds) if ds in benchmark.datasets else None
        values[c] = (_float(getattr(opt, m, None)), math.nan)
    rows.append(Row("optimum", f"optimum ({benchmark.name})", None, values))
    notes.append("optimum: best valid and best test accuracy over all cells, each maximised independently")


def group_warnings(group: Group) -> list[str]:
    """What a reader must know before comparing a group's numbers: a legacy benchmark, no validation numbers,
    runs from more than one code version or configuration hash."""
    from ..benchmarks.embedded import LEGACY_BENCHMARKS

    out = []
    if group.key.benchmark in LEGACY_BENCHMARKS:
        out.append(f"benchmark {group.key.benchmark}: {LEGACY_BENCHMARKS[group.key.benchmark]}")
    if group.bench_datasets and not any(c.endswith("_valid") for c in group.bench_columns):
        out.append(f"no valid columns: benchmark {group.key.benchmark} has test accuracies only")
    versions = group.provenance.get("code_version") or []
    if len(versions) > 1:
        out.append(f"WARNING: these runs mix {len(versions)} code versions ({', '.join(versions)})")
    return out


# --- formatting --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Markup:
    """How one output format writes the parts of a table value; :func:`format_value` and :func:`cells` are the
    one implementation of what a value shows and which values are bold, for every format."""

    dash: str = DASH  # no value / no std / no count
    pm: str = " ± "
    interval: str = " [{:.2f}, {:.2f}]"
    partial: str = PARTIAL_MARK  # a mean over only some of the row's runs
    separated: str = SEP_MARK  # too few runs to test against the best
    bold_mean: str = "{}"  # LaTeX bolds the mean inside the value ...
    bold_cell: str = "{}"  # ... Markdown the whole value (HTML: a class on the cell, from the bold flag)


TEXT = Markup()
MARKDOWN = Markup(bold_cell="**{}**")
LATEX = Markup(
    dash="--",
    pm=r"$\pm$",
    interval=r" {{\scriptsize[{:.2f}, {:.2f}]}}",
    partial=r"$^\dagger$",
    separated=r"$^\ddagger$",
    bold_mean=r"\textbf{{{}}}",
)


def format_value(
    mean: float,
    std: float,
    kind: str,
    missing: int = 0,
    ci: tuple[float, float] | None = None,
    separated: bool = False,
    bold: bool = False,
    markup: Markup = TEXT,
) -> str:
    """``"mean ± std [lo, hi]"`` with two decimals (the interval when given and defined); a single number for the
    optimum and for published rows without a std; written in ``markup``.

    ``missing``: run rows only, how many runs have no value; all of them -> "not in benchmark", some -> a mark.
    ``separated``: the row has too few runs to be tested against the best (a mark). ``bold``: one of the best.
    """
    if _nan(mean):
        return NOT_IN_BENCH if kind == "run" and missing else markup.dash
    m = markup.bold_mean.format(f"{mean:.2f}") if bold else f"{mean:.2f}"
    if kind == "optimum" or (kind == "published" and _nan(std)):
        return m
    interval = markup.interval.format(*ci) if ci is not None and not _nan(ci[0]) else ""
    return (
        m
        + markup.pm
        + (markup.dash if _nan(std) else f"{std:.2f}")
        + interval
        + (markup.partial if missing else "")
        + (markup.separated if separated else "")
    )


def column_title(col: str) -> str:
    if col == RANK_COLUMN:
        return "ranking τ"
    ds, m = col.rsplit("_", 1)
    return f"{DATASET_NAMES.get(ds, ds)} {m}"


def cells(table: Table, row: Row, markup: Markup = TEXT) -> list[tuple[str, bool]]:
    """``row``'s value in each column of ``table`` as ``(text, bold)``: bold is the column's best run mean and every
    run row not significantly worse than it (the text carries ``markup``'s bold)."""
    out = []
    for c in table.columns:
        mean, std = row.values.get(c, (math.nan, math.nan))
        comp = row.compare.get(c)
        bold = row.kind == "run" and comp is not None and (comp.best or (comp.tested and not comp.worse))
        separated = comp is not None and not comp.best and not comp.tested
        text = format_value(mean, std, row.kind, row.missing.get(c, 0), row.ci.get(c), separated, bold, markup)
        out.append((markup.bold_cell.format(text) if bold else text, bold))
    return out


def count_text(row: Row, markup: Markup = TEXT) -> str:
    """The row's number of runs (the dash for the optimum row)."""
    return markup.dash if row.n is None else str(row.n)


def header_lines(table: Table) -> list[str]:
    """The facts every rendering of a table states: search dataset, protocol, benchmark, epochs."""
    k = table.group.key
    return [
        f"search dataset: {k.dataset}",
        f"protocol preset: {k.protocol}",
        f"benchmark: {k.benchmark} (fingerprint {k.fingerprint})",
        f"epochs: {k.epochs}",
    ]


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table (best run mean per column in bold) with its header facts and notes."""
    lines = [f"### {_md_escape(table.group.key.title)}", ""]
    lines += [f"- {_md_escape(h)}" for h in header_lines(table)]
    lines.append("")
    head = ["Method", "n", *(column_title(c) for c in table.columns)]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join([":---", "---:"] + ["---:"] * len(table.columns)) + "|")
    for row in table.rows:
        texts = [t for t, _ in cells(table, row, MARKDOWN)]
        lines.append("| " + " | ".join([_md_escape(row.label), count_text(row, MARKDOWN), *texts]) + " |")
    lines.append("")
    lines += [f"_{_md_escape(n)}_  " for n in table.notes]
    return "\n".join(lines) + "\n"


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(s: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(s))


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment; best run mean per column in ``\\textbf``; caption states the group."""
    k = table.group.key
    ncol = len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{Search on {tex_escape(k.dataset)}, protocol {tex_escape(k.protocol)}, {k.epochs} epochs; "
        rf"benchmark {tex_escape(k.benchmark)} (fingerprint {tex_escape(k.fingerprint)}). "
        rf"Mean$\pm$std [95\% t-interval] over seeds (sample std, ddof=1; -- for a single run). Bold: the best run mean and "
        rf"the rows not significantly worse (Welch, Holm, $\alpha={ALPHA}$); $^\ddagger$: $n<{MIN_N}$, too small to separate.}}",
        rf"\label{{tab:nas-{tex_escape(k.slug).replace(chr(92) + '_', '-')}}}",
        r"\begin{tabular}{l r " + " ".join(["c"] * ncol) + "}",
        r"\toprule",
        "Method & $n$ & " + " & ".join(tex_escape(column_title(c)) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    prev = None
    for row in table.rows:
        if prev is not None and row.kind != prev:
            lines.append(r"\midrule")
        prev = row.kind
        vals = [t for t, _ in cells(table, row, LATEX)]
        lines.append(" & ".join([tex_escape(row.label), count_text(row, LATEX), *vals]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_frame(table: Table) -> pd.DataFrame:
    """A tidy frame (one row per table row, numbers not strings), with the group's facts as columns."""
    k = table.group.key
    recs = []
    for row in table.rows:
        rec: dict[str, Any] = {
            "search_dataset": k.dataset,
            "protocol": k.protocol,
            "benchmark": k.benchmark,
            "benchmark_fingerprint": k.fingerprint,
            "epochs": k.epochs,
            "kind": row.kind,
            "label": row.label,
            "method": row.method,
            "source": row.source,
            "n": row.n,
        }
        for c in table.columns:
            mean, std = row.values.get(c, (math.nan, math.nan))
            rec[f"{c}_mean"] = mean
            rec[f"{c}_std"] = std
            if row.kind == "run":
                rec[f"{c}_not_in_benchmark"] = row.missing.get(c, 0)
                rec[f"{c}_ci95_lo"], rec[f"{c}_ci95_hi"] = row.ci.get(c, (math.nan, math.nan))
                comp = row.compare.get(c)
                rec[f"{c}_vs_best"] = comp.verdict if comp else None
                rec[f"{c}_p_welch"] = comp.p_welch if comp else math.nan
                rec[f"{c}_p_holm"] = comp.p_holm if comp else math.nan
                rec[f"{c}_p_mwu"] = comp.p_mwu if comp else math.nan
        rec["std_ddof"] = STD_DDOF if row.kind == "run" else None
        recs.append(rec)
    return pd.DataFrame(recs)


# --- found cells -------------------------------------------------------------------------------------------------
FOUND_COLUMNS = ["label", "method", "seed", "arch", "run_id"]


def found_cells(group: Group) -> pd.DataFrame:
    """Every run's final cell: label, method, seed, arch string, run id and its benchmark test accuracies."""
    tests = [f"{ds}_test" for ds in group.bench_datasets]
    return group.runs[FOUND_COLUMNS + tests].reset_index(drop=True)


def found_cells_text(group: Group) -> tuple[list[str], list[list[str]]]:
    """The found-cells table of a group as text, for every format: the titles of its test-accuracy columns, and per
    run ``[label, seed, arch, *accuracies]`` (two decimals, or "not in benchmark"); the caller escapes and wraps."""
    df = found_cells(group)
    tests = [c for c in df.columns if c.endswith("_test")]
    rows = [
        [str(r["label"]), str(r["seed"]), str(r["arch"])]
        + [NOT_IN_BENCH if _nan(_float(r[c])) else f"{float(r[c]):.2f}" for c in tests]
        for _, r in df.iterrows()
    ]
    return [column_title(c) for c in tests], rows


def found_cells_markdown(group: Group) -> str:
    """The found-cells table of a group in Markdown."""
    titles, rows = found_cells_text(group)
    head = ["Method", "seed", "found cell", *titles]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---", "---:", ":---"] + ["---:"] * len(titles)) + "|"]
    for label, seed, arch, *accs in rows:
        lines.append("| " + " | ".join([_md_escape(label), seed, f"`{_md_escape(arch)}`", *accs]) + " |")
    return "\n".join(lines) + "\n"
