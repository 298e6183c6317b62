"""Aggregation of stored runs: comparable groups, row labels, mean +- std over seeds.

Runs are only ever aggregated inside one *group*: the same search dataset, protocol preset, benchmark
(fingerprint) and number of epochs. Numbers from different groups are never mixed in one table.

Inside a group, a row is one *label*: the method's variant name (``variant`` of the record), plus the ``--set``
overrides that differ between runs of the group (an E2NAS ``gamma`` ablation gets its own rows instead of being
averaged into the main E2NAS row). Overrides that every run of the group shares are stated once, in the header.

Spread is the sample standard deviation over runs (``ddof=1``, as in the NB201 paper's mean +- std over runs);
with a single run it is undefined (NaN) and tables print "–".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..benchmarks.base import ALL_DATASETS as BENCH_DATASETS
from ..records import RunRecord
from .stats import ci95

#: Row order of the usual methods (the NB201 paper's order, E2NAS last); other methods follow alphabetically.
METHOD_ORDER = ("darts-v1", "darts-v2", "gdas", "setn", "enas", "rsps", "e2nas")
METRICS = ("valid", "test")
STD_DDOF = 1
#: the runs frame's column (added by :func:`group_runs`) with each run's last measured Kendall tau of the supernet's
#: ranking (nasbench_suite/ranking.py); NaN for a run that never measured it
RANK_COLUMN = "rank_kendall"


@dataclass(frozen=True)
class GroupKey:
    """What makes runs comparable."""

    dataset: str
    protocol: str
    benchmark: str
    fingerprint: str
    epochs: int | None

    @property
    def slug(self) -> str:
        """A file-name-safe short id of the group."""
        parts = [self.dataset, self.protocol, (self.fingerprint or "nobench")[:8], f"e{self.epochs}"]
        return "-".join("".join(c if c.isalnum() or c in "_." else "_" for c in str(p)) for p in parts)

    @property
    def title(self) -> str:
        return (
            f"search on {self.dataset} · protocol {self.protocol} · {self.epochs} epochs · "
            f"benchmark {self.benchmark} ({self.fingerprint})"
        )


@dataclass
class Group:
    """One comparable set of runs, with what the tables need to state about it."""

    key: GroupKey
    runs: pd.DataFrame  # the runs frame's columns plus ``label`` and ``overrides``
    epochs: pd.DataFrame  # the epochs frame restricted to these runs, plus ``label``
    shared_overrides: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: what the group's benchmark holds (from the records), whether or not the found cells are in it
    datasets: tuple[str, ...] = ()
    metrics: tuple[str, ...] = METRICS

    @property
    def bench_columns(self) -> list[str]:
        """``<dataset>_<metric>`` columns of the group's benchmark (e.g. no valid for AnalogNAS): a found cell the
        benchmark does not hold leaves its value empty, never drops a column."""
        return [f"{ds}_{m}" for ds in self.datasets for m in METRICS if m in self.metrics]

    @property
    def table_columns(self) -> list[str]:
        """The main table's columns: :attr:`bench_columns`, then the supernet's final ranking quality
        (:data:`RANK_COLUMN`) when some run of the group measured it."""
        has_rank = RANK_COLUMN in self.runs and pd.to_numeric(self.runs[RANK_COLUMN], errors="coerce").notna().any()
        return self.bench_columns + ([RANK_COLUMN] if has_rank else [])

    @property
    def bench_datasets(self) -> list[str]:
        """The benchmark datasets of this group (each has a test accuracy column)."""
        return list(self.datasets)

    def missing(self, col: str) -> pd.Series:
        """Runs (rows of ``runs``) without a value in ``col``: their found cell is not in the benchmark."""
        return self.runs[col].isna() if col in self.runs else pd.Series(True, index=self.runs.index)


#: Kinds of ``kind:value`` settings in their reading order (E2NAS's gamma: static schedules before sigmoid ones).
SETTING_KINDS = ("static", "sig")


def setting_key(value: Any) -> tuple:
    """Sort key of a setting's value: numbers numerically, ``kind:number`` by kind (static before sig) then number,
    anything else after them as text (so ``sig:1 < sig:10 < sig:20``, not the strings' order)."""
    text = str(value).strip()
    kind, sep, num = text.partition(":")
    try:
        return (0, -1, float(text), text) if not sep else (0, SETTING_KINDS.index(kind.strip()), float(num), text)
    except ValueError:
        return (1, 0, math.inf, text)


def method_rank(method: str) -> int:
    """Sort key of a method name in :data:`METHOD_ORDER` (unknown methods last)."""
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _key(row: pd.Series) -> GroupKey:
    ep = row["epochs"]
    return GroupKey(
        dataset=str(row["dataset"]),
        protocol=str(row["protocol"]),
        benchmark=str(row["benchmark"]),
        fingerprint=str(row["benchmark_fingerprint"]),
        epochs=None if pd.isna(ep) else int(ep),
    )


def _provenance(recs: list[RunRecord]) -> dict[str, Any]:
    """What a report must say about where a group's numbers come from (every distinct value, sorted)."""

    def distinct(get) -> list[str]:
        return sorted({str(v) for v in (get(r) for r in recs) if v not in (None, "")})

    return {
        "benchmark": distinct(lambda r: r.benchmark.name),
        "benchmark_provenance": distinct(lambda r: r.benchmark.provenance),
        "benchmark_fingerprint": distinct(lambda r: r.benchmark.fingerprint),
        "benchmark_path": distinct(lambda r: r.benchmark.path),
        "code_version": distinct(lambda r: r.code_version),
        "data": distinct(lambda r: r.data.label),
        "device": distinct(lambda r: r.environment.device),
        "torch": distinct(lambda r: r.environment.torch),
        "protocol": _protocol_settings(recs),
    }


def _protocol_settings(recs: list[RunRecord]) -> dict[str, str]:
    """Resolved protocol settings; a key whose value differs between runs lists every value."""
    vals: dict[str, set[str]] = {}
    for r in recs:
        for k, v in r.protocol_settings.items():
            vals.setdefault(k, set()).add(str(v))
    return {k: " | ".join(sorted(v)) for k, v in sorted(vals.items())}


def _bench_holds(recs: list[RunRecord], runs: pd.DataFrame) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The datasets and metrics of the group's benchmark: recorded by the runner; for records written before it
    recorded them, the datasets and metrics that have at least one value."""
    datasets: set[str] = set()
    metrics: set[str] = set()
    for r in recs:
        datasets.update(r.benchmark.datasets or ())
        metrics.update(r.benchmark.metrics or ())
    for ds in BENCH_DATASETS:
        for m in METRICS:
            if f"{ds}_{m}" in runs and runs[f"{ds}_{m}"].notna().any():
                datasets.add(ds)
                metrics.add(m)
    return tuple(ds for ds in BENCH_DATASETS if ds in datasets), tuple(m for m in METRICS if m in metrics)


def group_runs(runs: pd.DataFrame, epochs: pd.DataFrame, records: dict[str, RunRecord]) -> list[Group]:
    """Split the runs frame into comparable groups and give every run its row label."""
    if runs.empty:
        return []
    runs = runs.copy()
    runs["overrides"] = [records[rid].overrides if rid in records else {} for rid in runs["run_id"]]
    keys = [_key(r) for _, r in runs.iterrows()]
    runs["_key"] = keys
    groups = []
    for key in sorted(set(keys), key=lambda k: (k.dataset, k.protocol, k.benchmark, k.fingerprint, k.epochs or 0)):
        g = runs[runs["_key"] == key].drop(columns="_key").copy()
        ovs = list(g["overrides"])
        # epochs is part of the group key; an override every run shares is a header fact, not a row difference
        all_keys = sorted({k for o in ovs for k in o} - {"epochs"})
        shared = {k: ovs[0][k] for k in all_keys if all(k in o and o[k] == ovs[0].get(k) for o in ovs)}
        labels, order = [], []
        for variant, o in zip(g["variant"], ovs):
            varying = [k for k in all_keys if k not in shared and k in o]
            labels.append(f"{variant} [{', '.join(f'{k}={o[k]}' for k in varying)}]" if varying else str(variant))
            order.append((str(variant), tuple((k, setting_key(o[k])) for k in varying)))
        g["label"] = labels
        g["_order"] = order
        g = g.assign(_rank=g["method"].map(method_rank)).sort_values(["_rank", "_order", "seed"])
        g = g.drop(columns=["_rank", "_order"])
        e = epochs[epochs["run_id"].isin(g["run_id"])].copy()
        e["label"] = e["run_id"].map(dict(zip(g["run_id"], g["label"])))
        if RANK_COLUMN in e:  # each run's last measurement (after its last epoch): the table's ranking column
            last = e.dropna(subset=[RANK_COLUMN]).sort_values("epoch").groupby("run_id")[RANK_COLUMN].last()
            g[RANK_COLUMN] = g["run_id"].map(last).astype(float)
        recs = [records[r] for r in g["run_id"] if r in records]
        datasets, metrics = _bench_holds(recs, g)
        groups.append(
            Group(key, g.reset_index(drop=True), e.reset_index(drop=True), shared, _provenance(recs), datasets, metrics)
        )
    return groups


def aggregate(group: Group) -> pd.DataFrame:
    """One row per label: ``label``, ``method``, ``n`` and per table column (:attr:`Group.table_columns`) ``<col>_mean``, ``<col>_std``,
    ``<col>_n``, ``<col>_ci_lo``/``<col>_ci_hi`` and ``<col>_values`` (the runs' values, for the tests).

    ``std`` is the sample standard deviation (ddof=1) over the runs that have a value; NaN with one run. The
    interval is the 95% t-interval of the mean (NaN with one run).
    """
    cols = group.table_columns
    rows = []
    for label, g in group.runs.groupby("label", sort=False):
        row: dict[str, Any] = {"label": label, "method": g["method"].iloc[0], "n": len(g)}
        for c in cols:
            v = pd.to_numeric(g[c], errors="coerce").dropna()
            row[f"{c}_mean"] = float(v.mean()) if len(v) else np.nan
            row[f"{c}_std"] = float(v.std(ddof=STD_DDOF)) if len(v) > 1 else np.nan
            row[f"{c}_n"] = len(v)
            row[f"{c}_ci_lo"], row[f"{c}_ci_hi"] = ci95(v.to_numpy())
            row[f"{c}_values"] = v.tolist()
        rows.append(row)
    return pd.DataFrame(rows)
