"""Figures of one comparable group (PNG and PDF): search curves, op distribution, E2NAS ablations, search cost.

Figures are built as standalone :class:`matplotlib.figure.Figure` objects (Agg canvas, no pyplot state), so a
report can be rendered from any thread or a headless server and no figure outlives its caller. Every function
returns the figure; :func:`save_figure` writes it. Colours follow the row label, the same in every figure.
"""

from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..space import OPS, Cell
from .aggregate import Group
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


def palette(labels: list[str]) -> dict[str, Any]:
    """A colour per label, stable in the labels' order."""
    cols = sns.color_palette("tab10", max(len(labels), 1))
    return {lab: cols[i % len(cols)] for i, lab in enumerate(labels)}


def _labels(frame: pd.DataFrame) -> list[str]:
    col = "label" if "label" in frame else "variant"
    return list(dict.fromkeys(frame[col]))


def _style(ax) -> None:
    ax.grid(True, alpha=STYLE["grid.alpha"])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# --- search curves -----------------------------------------------------------------------------------------------
def search_curves(epochs: pd.DataFrame, datasets: list[str], colors: dict[str, Any] | None = None) -> Figure:
    """Benchmark test accuracy of the derived cell vs epoch: one axes per benchmark dataset, one line per label
    (mean over seeds) with a band of +- one sample std (ddof=1) over seeds."""
    labels = _labels(epochs)
    colors = colors or palette(labels)
    fig, axes = _figure(max(len(datasets), 1))
    key = "label" if "label" in epochs else "variant"
    for ax, ds in zip(axes, datasets):
        col = f"{ds}_test"
        for lab in labels:
            e = epochs[epochs[key] == lab]
            stats = e.groupby("epoch")[col].agg(["mean", "std", "count"]).dropna(subset=["mean"])
            if stats.empty:
                continue
            x = stats.index.to_numpy() + 1  # epochs are stored 0-based; plot "after epoch k"
            ax.plot(x, stats["mean"], label=lab, color=colors[lab], lw=1.8, marker="o" if len(x) < 15 else None, ms=3)
            sd = stats["std"].fillna(0.0).to_numpy()
            ax.fill_between(x, stats["mean"] - sd, stats["mean"] + sd, color=colors[lab], alpha=0.18, lw=0)
        ax.set_xlabel("search epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{DATASET_NAMES.get(ds, ds)} test accuracy (%)")
        ax.set_title(f"derived cell on {DATASET_NAMES.get(ds, ds)}")
        _style(ax)
    if labels:
        axes[-1].legend(fontsize=8, loc="best")
    fig.suptitle("Search curves (mean ± std over seeds)")
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
                ax.text(b.get_x() + b.get_width() / 2, b.get_y() + b.get_height() / 2, str(c), ha="center", va="center", fontsize=8)
        left += share
    ax.set_yticks(y, [f"{lab} ({int(t)} edges)" for lab, t in zip(counts.index, counts.sum(axis=1))])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of edges in the final cells")
    ax.set_ylabel("method")
    ax.set_title("Operations in the found cells")
    ax.legend(ncols=len(OPS), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22 - 0.6 / (1 + len(counts))),
              frameon=False)  # fmt: skip
    return fig


# --- E2NAS ablations ---------------------------------------------------------------------------------------------
def _gamma_key(g: str) -> tuple:
    m = re.fullmatch(r"\s*(static|sig)\s*:\s*([-+0-9.eE]+)\s*", str(g))
    if m:
        return (0 if m.group(1) == "static" else 1, float(m.group(2)), str(g))
    return (2, math.inf, str(g))


def ablation_frame(runs: pd.DataFrame, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """E2NAS runs whose resolved hparams have ``gamma`` and ``eps``: one row per run with those two settings."""
    rows = []
    for _, r in runs[runs["method"] == E2NAS].iterrows():
        hp = ((records.get(r["run_id"]) or {}).get("config") or {}).get("hparams") or {}
        if "gamma" in hp and "eps" in hp:
            rows.append({**r.to_dict(), "gamma": str(hp["gamma"]), "eps": float(hp["eps"])})
    return pd.DataFrame(rows)


def e2nas_ablation(frame: pd.DataFrame, by: str, datasets: list[str]) -> Figure | None:
    """Final benchmark test accuracy vs ``by`` ("gamma" or "eps"), each seed a point, the mean a black bar;
    points are coloured by the other setting so that runs with different settings are not read as one."""
    if frame.empty or by not in ("gamma", "eps"):
        return None
    other = "eps" if by == "gamma" else "gamma"
    order = sorted(frame[by].unique(), key=_gamma_key if by == "gamma" else float)
    fig, axes = _figure(max(len(datasets), 1), width=max(4.5, 0.9 * len(order) + 2))
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
        ax.set_xlabel("gamma schedule" if by == "gamma" else "epsilon (complementation weight)")
        ax.set_ylabel(f"{DATASET_NAMES.get(ds, ds)} test accuracy (%)")
        ax.set_title(f"E2NAS: accuracy vs {by}")
        ax.legend(title=other, fontsize=7, title_fontsize=8)
        _style(ax)
    return fig


# --- cost --------------------------------------------------------------------------------------------------------
def search_cost(runs: pd.DataFrame) -> Figure:
    """Mean total wall time per label in hours (+- std over seeds), bars labelled with the device(s)."""
    key = "label" if "label" in runs else "variant"
    labels = _labels(runs)
    colors = palette(labels)
    fig, (ax,) = _figure(1, width=max(5.0, 1.1 * len(labels) + 2))
    for i, lab in enumerate(labels):
        r = runs[runs[key] == lab]
        hours = pd.to_numeric(r["total_s"], errors="coerce").dropna() / 3600.0
        if hours.empty:
            continue
        sd = float(hours.std(ddof=1)) if len(hours) > 1 else 0.0
        ax.bar(i, hours.mean(), yerr=sd, color=colors[lab], capsize=4)
        devices = ", ".join(sorted({str(d) for d in r["device"].dropna()})) or "unknown device"
        ax.annotate(devices, (i, hours.mean() + sd), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    ax.set_ylabel("search wall time (hours)")
    ax.set_xlabel("method (device above the bar)")
    ax.set_title("Search cost per run (mean ± std over seeds)")
    _style(ax)
    return fig


# --- a group's figures, saving -----------------------------------------------------------------------------------
def group_figures(group: Group, records: dict[str, dict[str, Any]]) -> dict[str, Figure]:
    """Every figure of a group, by name (``curves``, ``ops``, ``cost``; ``e2nas_gamma``/``e2nas_eps`` only when
    E2NAS runs with ``gamma``/``eps`` hparams exist; ``curves`` only when a benchmark dataset has values)."""
    labels = list(dict.fromkeys(group.runs["label"]))
    colors = palette(labels)
    datasets = group.bench_datasets
    figs: dict[str, Figure] = {}
    if datasets and not group.epochs.empty:
        figs["curves"] = search_curves(group.epochs, datasets, colors)
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
