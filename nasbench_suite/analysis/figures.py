"""Figures of one comparable group (PNG and PDF): search curves, op distribution, E2NAS ablations, search cost.

Figures are built as standalone :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state), so a
report can be rendered from any thread or a headless server and no figure outlives its caller. Every function
returns the figure; :func:`save_figure` writes it. Colours follow the row label, the same in every figure.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from scipy import stats as sst

from ..records import RunRecord
from ..space import EDGES, OPS, Cell
from .aggregate import METHOD_ORDER, Group, setting_key
from .tables import DATASET_NAMES

STYLE = {"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
E2NAS = "e2nas"


def _figure(ncols: int, width: float = 5.0, height: float = 3.6) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.set_facecolor("white")
    return fig, list(axes)


#: One fixed colour per method in every figure of every report (tab10, in the table's method order).
_TAB10 = sns.color_palette("tab10", 10)
METHOD_COLORS = {m: _TAB10[i] for i, m in enumerate(METHOD_ORDER)}
_SPARE_COLORS = [_TAB10[i] for i in range(len(METHOD_ORDER), 10)]
#: Line styles that tell a method's settings apart (its shades alone are hard to read with many settings).
LINESTYLES = ("-", "--", "-.", ":")


def method_color(method: str) -> Any:
    """The colour of ``method``: fixed for the known methods; others take a spare colour by name (stable)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _SPARE_COLORS[sum(map(ord, str(method))) % len(_SPARE_COLORS)]


def palette(runs: pd.DataFrame) -> dict[str, Any]:
    """A colour per row label: the method's colour; labels of one method with different settings (an ablation)
    get shades of it, darkest last, so a method keeps its hue in every figure."""
    key = "label" if "label" in runs else "variant"
    out: dict[str, Any] = {}
    for method, labels in _labels_by_method(runs, key).items():
        base = method_color(method)
        if len(labels) == 1:
            out[labels[0]] = base
            continue
        shades = sns.blend_palette(
            [sns.set_hls_values(base, l=0.75), base, sns.set_hls_values(base, l=0.25)], len(labels)
        )
        out.update(zip(labels, shades))
    return out


def linestyles(runs: pd.DataFrame) -> dict[str, str]:
    """A line style per label: solid for a method's first setting, then dashed, dash-dotted, dotted."""
    key = "label" if "label" in runs else "variant"
    return {
        lab: LINESTYLES[i % len(LINESTYLES)]
        for labels in _labels_by_method(runs, key).values()
        for i, lab in enumerate(labels)
    }


def _labels_by_method(runs: pd.DataFrame, key: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lab, method in zip(runs[key], runs["method"] if "method" in runs else runs[key]):
        if lab not in out.setdefault(str(method), []):
            out[str(method)].append(lab)
    return out


def _labels(frame: pd.DataFrame) -> list[str]:
    col = "label" if "label" in frame else "variant"
    return list(dict.fromkeys(frame[col]))


def _curve_labels(
    epochs: pd.DataFrame, colors: dict[str, Any] | None, styles: dict[str, str] | None
) -> tuple[str, dict[str, Any], dict[str, str], list[str]]:
    """What every curve figure starts from: the label column, the colours and line styles (the given ones or the
    frame's own), and the labels present in the table's row order (the palette's)."""
    key = "label" if "label" in epochs else "variant"
    colors = colors or palette(epochs)
    styles = styles or linestyles(epochs)
    present = set(epochs[key])
    return key, colors, styles, [lab for lab in colors if lab in present]


def _style(ax) -> None:
    ax.grid(True, alpha=STYLE["grid.alpha"])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _legend_outside(fig: Figure, ax, title: str | None = None) -> None:
    """One legend for the figure, to the right of the axes (never over the data); constrained layout makes room."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title, title_fontsize=8, frameon=False)


def clipped_artists(fig: Figure) -> list[str]:
    """Legends, titles and axes (with their tick labels) of ``fig`` that stick out of its canvas: they would be
    cut off in the saved image. Empty when everything drawn is inside."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    parts = [(f"legend {i}", lg.get_window_extent(renderer)) for i, lg in enumerate(fig.legends)]
    parts += [(f"text {t.get_text()!r:.40}", t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    parts += [(f"axes {ax.get_title()!r:.40}", ax.get_tightbbox(renderer)) for ax in fig.axes]
    return [
        name
        for name, ext in parts
        if ext is not None
        and (ext.x0 < box.x0 - 1 or ext.y0 < box.y0 - 1 or ext.x1 > box.x1 + 1 or ext.y1 > box.y1 + 1)
    ]


# --- search curves -----------------------------------------------------------------------------------------------
def search_curves(
    epochs: pd.DataFrame,
    datasets: list[str],
    colors: dict[str, Any] | None = None,
    styles: dict[str, str] | None = None,
) -> Figure:
    """Benchmark test accuracy of the derived cell vs epoch: one axes per benchmark dataset, one line per label
    (mean over seeds) with a band from the lowest to the highest seed (a band that never leaves the data)."""
    key, colors, styles, labels = _curve_labels(epochs, colors, styles)
    fig, axes = _figure(max(len(datasets), 1), width=4.6)
    for ax, ds in zip(axes, datasets):
        col = f"{ds}_test"
        for lab in labels:
            e = epochs[epochs[key] == lab]
            stats = e.groupby("epoch")[col].agg(["mean", "min", "max", "count"]).dropna(subset=["mean"])
            if stats.empty:
                continue
            x = stats.index.to_numpy() + 1  # epochs are stored 0-based; plot "after epoch k"
            ax.plot(
                x,
                stats["mean"],
                label=lab,
                color=colors[lab],
                ls=styles.get(lab, "-"),
                lw=1.8,
                marker="o" if len(x) < 15 else None,
                ms=3,
            )
            ax.fill_between(x, stats["min"], stats["max"], color=colors[lab], alpha=0.15, lw=0)
        ax.set_xlabel("search epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{DATASET_NAMES.get(ds, ds)} test accuracy (%)")
        ax.set_title(f"derived cell on {DATASET_NAMES.get(ds, ds)}")
        _style(ax)
    _legend_outside(fig, axes[0])
    fig.suptitle("Search curves")
    return fig


# --- anytime performance and losses -----------------------------------------------------------------------------
def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% t-band over seeds (rows) per grid point (columns); the band is the mean where n < 2."""
    n = np.sum(~np.isnan(values), axis=0)
    mean = np.nanmean(values, axis=0)
    sd = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.zeros_like(mean)
    half = np.where(n > 1, sst.t.ppf(0.975, np.maximum(n - 1, 1)) * np.nan_to_num(sd) / np.sqrt(np.maximum(n, 1)), 0.0)
    return mean, mean - half, mean + half


def anytime_curves(
    epochs: pd.DataFrame,
    datasets: list[str],
    optima: dict[str, float] | None = None,
    colors: dict[str, Any] | None = None,
    styles: dict[str, str] | None = None,
) -> Figure:
    """Test accuracy of the derived cell against cumulative wall-clock seconds of the run (log x), mean and 95%
    t-band over seeds; a second row with the regret to the benchmark optimum when ``optima`` gives it. Each seed is
    a step function (the last derived cell holds until the next), read on a common time grid where every seed of
    the label has started."""
    key, colors, styles, labels = _curve_labels(epochs, colors, styles)
    rows = 2 if optima else 1
    fig = Figure(figsize=(4.6 * max(len(datasets), 1), 3.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, max(len(datasets), 1), squeeze=False)
    for j, ds in enumerate(datasets):
        col = f"{ds}_test"
        for lab in labels:
            e = epochs[(epochs[key] == lab)].dropna(subset=[col])
            seeds = [g.sort_values("elapsed_s") for _, g in e.groupby("run_id")]
            if not seeds:
                continue
            start, end = max(g["elapsed_s"].iloc[0] for g in seeds), max(g["elapsed_s"].iloc[-1] for g in seeds)
            grid = np.geomspace(max(start, 1e-3), max(end, start * 1.001, 1e-3), 60)
            vals = np.vstack(
                [
                    g[col].to_numpy()[np.clip(np.searchsorted(g["elapsed_s"].to_numpy(), grid, "right") - 1, 0, None)]
                    for g in seeds
                ]
            )
            for i, sub in enumerate((vals, (optima or {}).get(ds, np.nan) - vals)[:rows]):  # accuracy, then regret
                mean, lo, hi = _band(sub)
                lo, hi = np.clip(lo, 0, 100), np.clip(hi, 0, 100)  # (two seeds: a t-band far outside 0-100 %)
                ax = axes[i][j]
                ax.plot(
                    grid, mean, color=colors[lab], ls=styles.get(lab, "-"), lw=1.6, label=lab, drawstyle="steps-post"
                )
                ax.fill_between(
                    grid, lo, hi, color=colors[lab], alpha=0.15 if len(labels) <= 8 else 0.04, lw=0, step="post"
                )  # (fainter with many labels: an ablation grid's bands hid the lines)
        name = DATASET_NAMES.get(ds, ds)
        axes[0][j].set_ylabel(f"{name} test accuracy (%)")
        axes[0][j].set_title(f"derived cell on {name}")
        if rows == 2:
            axes[1][j].set_ylabel(f"regret to the {name} optimum (%)")
        for i in range(rows):
            axes[i][j].set_xscale("log")
            # plain numbers at 1, 2, 5 x 10^k only: the default minor labels overlap on a short time span
            axes[i][j].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axes[i][j].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axes[i][j].xaxis.set_minor_formatter(NullFormatter())
            axes[i][j].set_xlabel("search wall-clock (s, log)")
            _style(axes[i][j])
    _legend_outside(fig, axes[0][0])
    fig.suptitle("Anytime performance")
    return fig


def loss_curves(
    epochs: pd.DataFrame, colors: dict[str, Any] | None = None, styles: dict[str, str] | None = None
) -> Figure:
    """Mean train and valid loss per epoch (mean over seeds, band lowest to highest seed), one axes each."""
    key, colors, styles, labels = _curve_labels(epochs, colors, styles)
    fig, axes = _figure(2, width=4.6)
    for ax, col in zip(axes, ("train_loss", "valid_loss")):
        for lab in labels:
            stats = epochs[epochs[key] == lab].groupby("epoch")[col].agg(["mean", "min", "max"]).dropna()
            if stats.empty:
                continue
            x = stats.index.to_numpy() + 1
            ax.plot(x, stats["mean"], color=colors[lab], ls=styles.get(lab, "-"), lw=1.6, label=lab)
            ax.fill_between(x, stats["min"], stats["max"], color=colors[lab], alpha=0.15, lw=0)
        ax.set_xlabel("search epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(col.replace("_", " "))
        ax.set_title("weight-step loss" if col == "train_loss" else "arch-step / validation loss")
        _style(ax)
    _legend_outside(fig, axes[0])
    fig.suptitle("Losses (mean over seeds; band: lowest to highest seed)")
    return fig


# --- supernet ranking quality and search dynamics ----------------------------------------------------------------
RANK_MEASURES = (("rank_kendall", "Kendall τ"), ("rank_spearman", "Spearman ρ"), ("rank_top10", "top-10 overlap"))


def _seed_matrix(e: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs (1-based) where ``col`` was measured, and the runs x epochs matrix of its values (NaN: not measured)."""
    piv = e.pivot_table(index="run_id", columns="epoch", values=col, aggfunc="last").dropna(axis=1, how="all")
    return piv.columns.to_numpy() + 1, piv.to_numpy(dtype=float)


def ranking_curves(
    epochs: pd.DataFrame, colors: dict[str, Any] | None = None, styles: dict[str, str] | None = None
) -> Figure | None:
    """Supernet ranking quality vs epoch (Kendall tau, Spearman rho, top-10 overlap against the benchmark's test
    accuracy, see :mod:`nasbench_suite.ranking`): line = mean over seeds, band = lowest to highest seed.
    None when no run measured it."""
    if "rank_top10" not in epochs or epochs["rank_top10"].isna().all():
        return None
    key, colors, styles, labels = _curve_labels(epochs, colors, styles)
    fig, axes = _figure(len(RANK_MEASURES), width=4.4)
    for ax, (col, name) in zip(axes, RANK_MEASURES):
        bottom = 0.0 if col == "rank_top10" else -1.0
        for lab in labels:
            e = epochs[epochs[key] == lab]
            if col not in e or e[col].isna().all():
                continue
            x, vals = _seed_matrix(e, col)
            # band: lowest to highest seed (a t-band over two seeds spans the whole range and hides the means)
            ax.plot(
                x, np.nanmean(vals, 0), color=colors[lab], ls=styles.get(lab, "-"), lw=1.6, label=lab, marker="o", ms=3
            )
            ax.fill_between(x, np.nanmin(vals, 0), np.nanmax(vals, 0), color=colors[lab], alpha=0.08, lw=0)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylim(bottom - 0.05, 1.05)
        ax.set_xlabel("search epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(f"supernet ranking: {name}")
        _style(ax)
    ds = epochs["rank_dataset"].dropna().unique() if "rank_dataset" in epochs else []
    vs = f" vs {', '.join(DATASET_NAMES.get(d, d) for d in ds)} test accuracy" if len(ds) else ""
    _legend_outside(fig, axes[0])
    fig.suptitle(f"Supernet ranking{vs} (mean over seeds; band: seed range)")
    return fig


def entropy_curves(
    epochs: pd.DataFrame, colors: dict[str, Any] | None = None, styles: dict[str, str] | None = None
) -> Figure | None:
    """Mean per-edge entropy (nats) of each method's architecture distribution vs epoch; line = mean over seeds,
    band = lowest to highest seed; the uniform distribution's log 5 marked. None when no run recorded it."""
    if "arch_entropy" not in epochs or epochs["arch_entropy"].isna().all():
        return None
    key, colors, styles, labels = _curve_labels(epochs, colors, styles)
    fig, (ax,) = _figure(1, width=6.5)
    for lab in labels:
        stats = epochs[epochs[key] == lab].groupby("epoch")["arch_entropy"].agg(["mean", "min", "max"]).dropna()
        if stats.empty:
            continue
        x = stats.index.to_numpy() + 1
        ax.plot(x, stats["mean"], color=colors[lab], ls=styles.get(lab, "-"), lw=1.6, label=lab)
        ax.fill_between(x, stats["min"], stats["max"], color=colors[lab], alpha=0.12, lw=0)
    ax.axhline(np.log(len(OPS)), color="grey", lw=0.8, ls=":")
    ax.annotate(
        "uniform (log 5)", (1, np.log(len(OPS))), textcoords="offset points", xytext=(2, -10), fontsize=7, color="grey"
    )
    ax.set_ylim(bottom=0, top=np.log(len(OPS)) * 1.08)
    ax.set_xlabel("search epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean edge entropy (nats)")
    ax.set_title("Entropy of the architecture distribution")
    _style(ax)
    _legend_outside(fig, ax)
    return fig


def arch_dynamics(epochs: pd.DataFrame) -> Figure | None:
    """Per-edge op probabilities over the epochs for one seed (the lowest) of each method's first label: one row
    per method, one axes per edge, one line per op. None when no run recorded a distribution."""
    if "arch_probs" not in epochs or epochs["arch_probs"].isna().all():
        return None
    key = "label" if "label" in epochs else "variant"
    e = epochs.dropna(subset=["arch_probs"])
    first = {}  # method -> its first label in the table's order
    for lab, method in zip(e[key], e["method"]):
        first.setdefault(method, lab)
    order = sorted(first, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER))
    fig = Figure(figsize=(14, 1.55 * len(order) + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(order), 6, squeeze=False, sharey=True)
    op_colors = dict(zip(OPS, sns.color_palette("Set2", len(OPS))))
    for i, method in enumerate(order):
        rows = e[e[key] == first[method]]
        run = rows.sort_values(["seed", "epoch"])["run_id"].iloc[0]
        rows = rows[rows["run_id"] == run].sort_values("epoch")
        probs = np.array(rows["arch_probs"].tolist(), dtype=float)  # epochs x 6 x 5
        x = rows["epoch"].to_numpy() + 1
        seed = rows["seed"].iloc[0]
        for j in range(6):
            ax = axes[i][j]
            for k, op in enumerate(OPS):
                ax.plot(x, probs[:, j, k], color=op_colors[op], lw=1.5, label=op)
            ax.set_ylim(0, 1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            ax.tick_params(labelsize=7)
            if i == 0:
                dst, src = EDGES[j]  # (to, from)
                ax.set_title(f"edge {src}→{dst}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{first[method]}\n(seed {seed})", fontsize=8)
            if i == len(order) - 1:
                ax.set_xlabel("epoch", fontsize=8)
            _style(ax)
    _legend_outside(fig, axes[0][0], title="operation")
    fig.suptitle("Architecture distribution per edge over the search (op probability; one seed per method)")
    return fig


# --- operation distribution --------------------------------------------------------------------------------------
def op_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Label x op: how often each of the 5 ops appears on the 6 edges of the final cells (n runs x 6 in total)."""
    key = "label" if "label" in runs else "variant"
    counts = {lab: dict.fromkeys(OPS, 0) for lab in _labels(runs)}
    for lab, arch in zip(runs[key], runs["arch"]):
        if not isinstance(arch, str):
            continue
        for op in Cell.parse(arch).op_names():
            counts[lab][op] += 1
    return pd.DataFrame.from_dict(counts, orient="index", columns=list(OPS)).astype(int)


def op_distribution(runs: pd.DataFrame) -> Figure:
    """Stacked horizontal bars per label: the share of each op over the final cells' edges, counts annotated.
    A collapse to ``skip_connect`` shows as a bar of one colour."""
    counts = op_counts(runs)
    fig, (ax,) = _figure(1, width=7.5, height=1.6 + 0.45 * len(counts))
    op_colors = dict(zip(OPS, sns.color_palette("Set2", len(OPS))))
    left = np.zeros(len(counts))
    totals = counts.sum(axis=1).replace(0, 1).to_numpy()
    y = np.arange(len(counts))
    for op in OPS:
        share = counts[op].to_numpy() / totals
        bars = ax.barh(y, share, left=left, color=op_colors[op], label=op, edgecolor="white")
        for b, c, s in zip(bars, counts[op], share):
            if c and s >= 0.06:
                ax.text(
                    b.get_x() + b.get_width() / 2,
                    b.get_y() + b.get_height() / 2,
                    str(c),
                    ha="center",
                    va="center",
                    fontsize=8,
                )
        left += share
    ax.set_yticks(y, [f"{lab} ({int(t)} edges)" for lab, t in zip(counts.index, counts.sum(axis=1))])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of edges in the final cells")
    ax.set_ylabel("method")
    ax.set_title("Operations in the found cells")
    _legend_outside(fig, ax, title="operation")
    return fig


# --- E2NAS ablations ---------------------------------------------------------------------------------------------
def ablation_frame(runs: pd.DataFrame, records: dict[str, RunRecord]) -> pd.DataFrame:
    """E2NAS runs whose resolved hparams have ``gamma`` and ``eps``: one row per run with those two settings."""
    rows = []
    for _, r in runs[runs["method"] == E2NAS].iterrows():
        hp = records[r["run_id"]].hparams if r["run_id"] in records else {}
        if "gamma" in hp and "eps" in hp:
            rows.append({**r.to_dict(), "gamma": str(hp["gamma"]), "eps": float(hp["eps"])})
    return pd.DataFrame(rows)


def e2nas_ablation(frame: pd.DataFrame, by: str, datasets: list[str]) -> Figure | None:
    """Final benchmark test accuracy vs ``by`` ("gamma" or "eps"), each seed a point, the mean a black bar;
    points are coloured by the other setting so that runs with different settings are not read as one."""
    if frame.empty or by not in ("gamma", "eps") or frame[by].nunique() < 2:
        return None  # an ablation needs at least two settings to show anything
    other = "eps" if by == "gamma" else "gamma"
    order = sorted(frame[by].unique(), key=setting_key)
    # capped width: with 8 gamma settings the three axes would otherwise be shrunk to unreadable text in the page
    fig, axes = _figure(max(len(datasets), 1), width=min(6.0, max(4.5, 0.6 * len(order) + 1.5)))
    data = frame.assign(**{by: frame[by].astype(str), other: frame[other].astype(str)})
    order_s = [str(o) for o in order]
    for ax, ds in zip(axes, datasets):
        col = f"{ds}_test"
        d = data.dropna(subset=[col])
        if d.empty:
            continue
        sns.stripplot(data=d, x=by, y=col, hue=other, order=order_s, ax=ax, jitter=0.12, size=6, dodge=False)
        means = d.groupby(by)[col].mean()
        for i, o in enumerate(order_s):
            if o in means:
                ax.hlines(means[o], i - 0.3, i + 0.3, color="black", lw=2)
        if len(order) > 5:
            ax.tick_params(axis="x", labelrotation=35)
        ax.set_xlabel("gamma schedule" if by == "gamma" else "epsilon (complementation weight)")
        ax.set_ylabel(f"{DATASET_NAMES.get(ds, ds)} test accuracy (%)")
        ax.set_title(f"E2NAS: accuracy vs {by}")
        ax.get_legend().remove()
        _style(ax)
    _legend_outside(fig, axes[0], title=other)
    return fig


# --- cost --------------------------------------------------------------------------------------------------------
def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds >= 2 * 3600:
        return "hours", 3600.0
    if seconds >= 120:
        return "minutes", 60.0
    return "seconds", 1.0


def search_cost(runs: pd.DataFrame) -> Figure:
    """Wall time per run and label, stacked: the search epochs, then candidate selection and benchmark queries
    (the rest of the run's time); bar = mean over seeds, whisker = lowest to highest seed's total; device above."""
    key = "label" if "label" in runs else "variant"
    labels = _labels(runs)
    colors = palette(runs)
    total = pd.to_numeric(runs["total_s"], errors="coerce")
    search = pd.to_numeric(runs["search_s"], errors="coerce").fillna(total)
    unit, div = _time_unit(float(total.max()) if total.notna().any() else 0.0)
    fig, (ax,) = _figure(1, width=max(5.5, 0.9 * len(labels) + 3))
    for i, lab in enumerate(labels):
        sel = (runs[key] == lab).to_numpy() & total.notna().to_numpy()
        if not sel.any():
            continue
        t, s_ = total[sel] / div, search[sel].clip(upper=total[sel]) / div
        ax.bar(i, s_.mean(), color=colors[lab], label="search epochs" if i == 0 else None)
        ax.bar(
            i,
            (t - s_).mean(),
            bottom=s_.mean(),
            color=colors[lab],
            alpha=0.45,
            hatch="//",
            edgecolor="white",
            label="selection + queries" if i == 0 else None,
        )
        if len(t) > 1:
            ax.errorbar(i, t.mean(), yerr=[[t.mean() - t.min()], [t.max() - t.mean()]], color="black", capsize=4, lw=1)
        devices = ", ".join(sorted({str(d) for d in runs.loc[sel, "device"].dropna()})) or "unknown device"
        ax.annotate(devices, (i, t.max()), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.set_xticks(
        range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center"
    )
    ax.set_ylabel(f"search wall time ({unit})")
    ax.set_xlabel("method (device above the bar)")
    ax.set_ylim(bottom=0)
    ax.margins(y=0.12)
    ax.set_title("Search cost per run")
    _style(ax)
    _legend_outside(fig, ax)
    return fig


# --- a group's figures, saving -----------------------------------------------------------------------------------
def group_figures(
    group: Group, records: dict[str, RunRecord], optima: dict[str, float] | None = None
) -> dict[str, Figure]:
    """Every figure of a group, by name (``curves``, ``anytime`` (with regret rows when ``optima`` gives the
    benchmark's best test accuracy per dataset), ``losses``, ``ranking``/``entropy``/``dynamics`` (when the runs
    recorded ranking quality / architecture distributions), ``ops``, ``cost``; ``e2nas_gamma``/``e2nas_eps`` only when
    E2NAS runs with ``gamma``/``eps`` hparams exist; ``curves`` only when a benchmark dataset has values)."""
    colors, styles = palette(group.runs), linestyles(group.runs)
    datasets = group.bench_datasets
    figs: dict[str, Figure] = {}
    if datasets and not group.epochs.empty and group.epochs[[f"{d}_test" for d in datasets]].notna().any().any():
        figs["curves"] = search_curves(group.epochs, datasets, colors, styles)
        figs["anytime"] = anytime_curves(group.epochs, datasets, optima, colors, styles)
    if not group.epochs.empty and group.epochs[["train_loss", "valid_loss"]].notna().any().any():
        figs["losses"] = loss_curves(group.epochs, colors, styles)
    for name, fig in (
        ("ranking", ranking_curves(group.epochs, colors, styles)),
        ("entropy", entropy_curves(group.epochs, colors, styles)),
        ("dynamics", arch_dynamics(group.epochs)),
    ):
        if fig is not None:
            figs[name] = fig
    figs["ops"] = op_distribution(group.runs)
    abl = ablation_frame(group.runs, records)
    if not abl.empty and datasets:
        for by in ("gamma", "eps"):
            fig = e2nas_ablation(abl, by, datasets)
            if fig is not None:
                figs[f"e2nas_{by}"] = fig
    figs["cost"] = search_cost(group.runs)
    return figs


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``<name>.png`` (150 dpi) and ``<name>.pdf`` into ``out_dir``, atomically; returns the paths."""
    from ..store import atomic_write_bytes

    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path, kwargs in zip(paths, ({"format": "png", "dpi": 150}, {"format": "pdf"})):
        buf = io.BytesIO()
        fig.savefig(buf, facecolor="white", **kwargs)
        atomic_write_bytes(path, buf.getvalue())
    return paths


def png_base64(fig: Figure) -> str:
    """The figure as a base64 PNG (for embedding in HTML)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")
