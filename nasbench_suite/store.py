"""Run records on disk, and their loading as tidy pandas frames.

Layout under a results folder::

    runs/<run_id>/record.json     one record per finished run (schema_version, spec, resolved config, code
                                  version, benchmark provenance, final cell + benchmark numbers, timings)
    runs/<run_id>/metrics.jsonl   one line per epoch (derived cell, losses, accuracies, wall time, benchmark)
    runs/<run_id>/checkpoint.pt   the last epoch's checkpoint while a run is unfinished

Every file is written atomically (temp file in the same folder, fsync, rename, fsync of the folder), so a crash
leaves either the old or the new file, never half of one. The analysis layer reads only this store.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .benchmarks.base import ALL_DATASETS as BENCH_DATASETS  # the record's benchmark columns, one per dataset
from .errors import StoreError

SCHEMA_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix.

    A write that fails (a full disk, a read-only folder, a path under a file) leaves the old file as it was and
    is a :class:`StoreError` naming ``path``.
    """
    path = Path(path)
    try:
        _atomic_write(path, data)
    except OSError as e:
        raise StoreError(f"cannot write {path} ({e.strerror or e})") from None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class Store:
    """A results folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def ensure_writable(self) -> None:
        """Create the folder if needed; a folder that cannot be written is a :class:`StoreError`."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = self.runs_dir / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StoreError(f"results folder {self.root} is not writable ({e.strerror or e})") from None

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "record.json"

    def metrics_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "metrics.jsonl"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint.pt"

    def is_done(self, run_id: str) -> bool:
        """True when a complete, readable record of ``run_id`` exists."""
        try:
            return read_record(self.record_path(run_id)).get("status") == "done"
        except (StoreError, FileNotFoundError):
            return False

    def write_metrics(self, run_id: str, epochs: list[dict[str, Any]]) -> None:
        """Rewrite the per-epoch metrics file atomically (it is small: one line per epoch)."""
        lines = "".join(json.dumps(e, sort_keys=True, default=_json_default) + "\n" for e in epochs)
        atomic_write_bytes(self.metrics_path(run_id), lines.encode())

    def write_record(self, record: dict[str, Any]) -> None:
        """Atomically write a finished run's record."""
        atomic_write_json(self.record_path(record["run_id"]), record)

    def run_ids(self) -> list[str]:
        """Ids of every run folder that holds a record file."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.runs_dir.glob("*/record.json"))


def read_record(path: Path) -> dict[str, Any]:
    """Read and validate one record; a corrupt or foreign file is a :class:`StoreError`."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"run record {path} is unreadable ({e})") from None
    if not isinstance(rec, dict) or "schema_version" not in rec or "run_id" not in rec:
        raise StoreError(f"run record {path} is not a nas-suite record (no schema_version/run_id)")
    version = rec["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreError(f"run record {path} has schema_version {version!r}, not a number")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"run record {path} has schema {rec['schema_version']}, newer than this tool's {SCHEMA_VERSION}"
        )
    return rec


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The per-epoch lines of a metrics file."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise StoreError(f"{path}:{n} is not JSON ({e})") from None
            if not isinstance(entry, dict):
                raise StoreError(f"{path}:{n} is not a JSON object (a {type(entry).__name__})")
            out.append(entry)
    return out


def _bench_columns(bench: dict[str, Any] | None) -> dict[str, float | None]:
    cols: dict[str, float | None] = {}
    for ds in BENCH_DATASETS:
        res = (bench or {}).get(ds) or {}
        cols[f"{ds}_valid"] = res.get("valid")
        cols[f"{ds}_test"] = res.get("test")
    return cols


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
    lists; absent for a method without one).
    """

    runs: pd.DataFrame
    epochs: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


#: the columns that say which run a row belongs to, first in both frames
KEY_COLUMNS = ["run_id", "method", "variant", "seed", "protocol", "dataset"]
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
    *(f"{ds}_{k}" for ds in BENCH_DATASETS for k in ("valid", "test")),
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
    *(f"{ds}_{k}" for ds in BENCH_DATASETS for k in ("valid", "test")),
]


def record_row(rec: dict[str, Any]) -> dict[str, Any]:
    """Flatten one record into a row of the runs frame."""
    final = rec.get("final", {})
    timings = rec.get("timings", {})
    bench = rec.get("benchmark", {})
    row = {
        "run_id": rec["run_id"],
        "method": rec.get("method"),
        "variant": rec.get("variant") or rec.get("method"),
        "seed": rec.get("seed"),
        "protocol": rec.get("protocol"),
        "dataset": rec.get("dataset"),
        "epochs": rec.get("config", {}).get("protocol", {}).get("epochs"),
        "arch": final.get("arch"),
        "status": rec.get("status"),
        "total_s": timings.get("total_s"),
        "search_s": timings.get("search_s"),
        "device": rec.get("environment", {}).get("device"),
        "benchmark": bench.get("name"),
        "benchmark_fingerprint": bench.get("fingerprint"),
        "code_version": rec.get("code_version"),
        "final_train_loss": final.get("train_loss"),
        "final_valid_loss": final.get("valid_loss"),
    }
    row.update(_bench_columns(final.get("bench")))
    for k in ("seed", "epochs", "total_s", "search_s", "final_train_loss", "final_valid_loss", *RUN_COLUMNS[-6:]):
        if row[k] is not None and (isinstance(row[k], bool) or not isinstance(row[k], (int, float))):
            raise TypeError(f"{k} is {row[k]!r}, not a number")
    return row


def load_runs(root: str | Path, records: Iterable[str] | None = None) -> LoadedRuns:
    """Load every record under ``root`` into tidy frames. Unreadable records are listed in ``problems``."""
    store = Store(root)
    rows, erows, problems, recs = [], [], [], {}
    for run_id in records if records is not None else store.run_ids():
        try:
            rec = read_record(store.record_path(run_id))
        except (StoreError, FileNotFoundError) as e:
            problems.append(str(e))
            continue
        if rec.get("status") != "done":
            continue
        try:  # a record with the keys but wrong types inside is a problem of that record, not of the report
            row = record_row(rec)
        except (AttributeError, TypeError, ValueError, KeyError) as e:
            problems.append(f"run record {store.record_path(run_id)} is malformed ({e}); left out")
            continue
        recs[run_id] = rec
        rows.append(row)
        mpath = store.metrics_path(run_id)
        if not mpath.exists():
            problems.append(f"{mpath} is missing: run {run_id} has no per-epoch metrics")
            continue
        try:
            epochs = read_metrics(mpath)
            ep_rows = []
            elapsed = 0.0
            for ep in epochs:
                erow = {k: row[k] for k in ("run_id", "method", "variant", "seed", "protocol", "dataset")}
                # every scalar the epoch line holds (a method's own: tau, gamma, novelty, ...), then fixed columns
                erow.update(
                    {
                        k: v
                        for k, v in ep.items()
                        if k != "wall_s" and (isinstance(v, (int, float, str, bool)) or v is None)
                    }
                )
                erow.update(
                    {k: ep.get(k) for k in ("epoch", "arch", "train_loss", "train_acc", "valid_loss", "valid_acc")}
                )
                if isinstance(ep.get("arch_probs"), list):  # the one non-scalar kept: the search dynamics' figure
                    erow["arch_probs"] = ep["arch_probs"]
                erow["epoch_s"] = ep.get("wall_s")
                elapsed += float(ep.get("wall_s") or 0.0)
                erow["elapsed_s"] = elapsed
                erow.update(_bench_columns(ep.get("bench")))
                ep_rows.append(erow)
        except StoreError as e:
            problems.append(str(e))
            continue
        except (AttributeError, TypeError) as e:
            problems.append(f"{mpath} is malformed ({e}); its curves are left out")
            continue
        erows.extend(ep_rows)
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    extra = sorted({k for e in erows for k in e} - set(EPOCH_COLUMNS))
    epochs_df = pd.DataFrame(erows, columns=EPOCH_COLUMNS + extra)
    return LoadedRuns(runs, epochs_df, problems, recs)
