"""Stored runs as tidy pandas frames: one row per run, one row per (run, epoch).

Built from what the store reads (:class:`~nasbench_suite.records.RunRecord`,
:class:`~nasbench_suite.records.EpochMetrics`); the store itself only reads and writes files. ``nasbench_suite.load_runs``
is :func:`load_runs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..benchmarks.base import ALL_DATASETS as BENCH_DATASETS  # the frames' benchmark columns, one per dataset
from ..errors import StoreError
from ..records import BenchScores, EpochMetrics, RunRecord, bench_value
from ..store import Store, read_metrics, read_record


@dataclass
class LoadedRuns:
    """What :func:`load_runs` returns: one row per run, one row per (run, epoch), and what could not be read.

    ``runs`` columns (:data:`RUN_COLUMNS`): identity (``run_id, method, variant, seed, protocol, dataset,
    epochs``), the final cell ``arch``, ``status``, seconds ``total_s`` (whole run) and ``search_s`` (the epochs'
    training, without derivation), ``device``, ``benchmark``/``benchmark_fingerprint``, ``code_version``, the last
    epoch's ``final_train_loss``/``final_valid_loss`` and ``<dataset>_<valid|test>`` accuracies (%) of the final
    cell (NaN when the benchmark does not hold it). ``epochs`` columns (:data:`EPOCH_COLUMNS` first): identity,
    ``epoch`` (0-based), the derived ``arch`` (None where ``derive_every`` skipped it), mean ``train_loss``,
    ``train_acc``, ``valid_loss``, ``valid_acc`` over the epoch's steps, ``epoch_s`` (its wall time) and
    ``elapsed_s`` (cumulative), the derived cell's benchmark accuracies; then every other scalar the run
    recorded per epoch (``lr``, ``search_s``, a method's own values such as GDAS's ``tau`` or E2NAS's ``gamma``,
    the search dynamics' ``arch_entropy`` and, where measured (``rank_every``), the supernet's ranking quality
    ``rank_kendall``, ``rank_spearman``, ``rank_top10``, ``rank_dataset``, ``rank_s``: see
    :mod:`nasbench_suite.ranking`), and ``arch_probs``, the method's 6 x 5 architecture distribution (nested
    lists; absent for a method without one). ``records``: each loaded run's :class:`RunRecord` by run id.
    """

    runs: pd.DataFrame
    epochs: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    records: dict[str, RunRecord] = field(default_factory=dict)


#: the columns that say which run a row belongs to, first in both frames
KEY_COLUMNS = ["run_id", "method", "variant", "seed", "protocol", "dataset"]
BENCH_COLUMNS = [f"{ds}_{k}" for ds in BENCH_DATASETS for k in ("valid", "test")]
RUN_COLUMNS = [
    *KEY_COLUMNS,
    "epochs",
    "arch",
    "status",
    "total_s",
    "search_s",
    "device",
    "benchmark",
    "benchmark_fingerprint",
    "code_version",
    "final_train_loss",
    "final_valid_loss",
    *BENCH_COLUMNS,
]
EPOCH_COLUMNS = [
    *KEY_COLUMNS,
    "epoch",
    "arch",
    "train_loss",
    "train_acc",
    "valid_loss",
    "valid_acc",
    "epoch_s",
    "elapsed_s",
    *BENCH_COLUMNS,
]


def bench_columns(bench: BenchScores) -> dict[str, float | None]:
    """``{"<dataset>_<valid|test>": accuracy}`` for every benchmark dataset (None where ``bench`` lacks it)."""
    return {f"{ds}_{m}": bench_value(bench, ds, m) for ds in BENCH_DATASETS for m in ("valid", "test")}


def record_row(rec: RunRecord) -> dict[str, Any]:
    """Flatten one record into a row of the runs frame."""
    row = {
        "run_id": rec.run_id,
        "method": rec.method,
        "variant": rec.variant_name,
        "seed": rec.seed,
        "protocol": rec.protocol,
        "dataset": rec.dataset,
        "epochs": rec.epochs,
        "arch": rec.final.arch,
        "status": rec.status,
        "total_s": rec.timings.total_s,
        "search_s": rec.timings.search_s,
        "device": rec.environment.device,
        "benchmark": rec.benchmark.name,
        "benchmark_fingerprint": rec.benchmark.fingerprint,
        "code_version": rec.code_version,
        "final_train_loss": rec.final.train_loss,
        "final_valid_loss": rec.final.valid_loss,
    }
    row.update(bench_columns(rec.final.bench))
    return row


def epoch_rows(row: dict[str, Any], epochs: list[EpochMetrics]) -> list[dict[str, Any]]:
    """The epochs frame's rows of one run (``row``: its runs-frame row, for the key columns)."""
    out = []
    elapsed = 0.0
    for ep in epochs:
        erow = {k: row[k] for k in KEY_COLUMNS}
        # every scalar the epoch line holds (a method's own: tau, gamma, novelty, ...), then the fixed columns
        erow.update({k: v for k, v in ep.columns().items() if k != "wall_s"})
        erow.update(
            epoch=ep.epoch,
            arch=ep.arch,
            train_loss=ep.train_loss,
            train_acc=ep.train_acc,
            valid_loss=ep.valid_loss,
            valid_acc=ep.valid_acc,
        )
        if ep.arch_probs is not None:  # the one non-scalar kept: the search dynamics' figure
            erow["arch_probs"] = ep.arch_probs
        erow["epoch_s"] = ep.wall_s
        elapsed += float(ep.wall_s or 0.0)
        erow["elapsed_s"] = elapsed
        erow.update(bench_columns(ep.bench))
        out.append(erow)
    return out


def load_runs(root: str | Path, records: Iterable[str] | None = None) -> LoadedRuns:
    """Load every finished record under ``root`` (or the run ids ``records``) into tidy frames. Unreadable or
    malformed records are listed in ``problems``; a run whose metrics are unreadable keeps its row, without curves."""
    store = Store(root)
    rows, erows, problems, recs = [], [], [], {}
    for run_id in records if records is not None else store.run_ids():
        try:
            rec = read_record(store.record_path(run_id))
        except (StoreError, FileNotFoundError) as e:
            problems.append(str(e))
            continue
        if not rec.is_done:
            continue
        row = record_row(rec)
        recs[run_id] = rec
        rows.append(row)
        mpath = store.metrics_path(run_id)
        if not mpath.exists():
            problems.append(f"{mpath} is missing: run {run_id} has no per-epoch metrics")
            continue
        try:
            erows.extend(epoch_rows(row, read_metrics(mpath)))
        except StoreError as e:
            problems.append(str(e))
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    extra = sorted({k for e in erows for k in e} - set(EPOCH_COLUMNS))
    epochs_df = pd.DataFrame(erows, columns=EPOCH_COLUMNS + extra)
    return LoadedRuns(runs, epochs_df, problems, recs)
