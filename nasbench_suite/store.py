"""Run records on disk: the results folder's layout, atomic writes, reading and writing records and metrics.

Layout under a results folder::

    runs/<run_id>/record.json     one record per finished run (schema_version, spec, resolved config, code
                                  version, benchmark provenance, final cell + benchmark numbers, timings)
    runs/<run_id>/metrics.jsonl   one line per epoch (derived cell, losses, accuracies, wall time, benchmark)
    runs/<run_id>/checkpoint.pt   the last epoch's checkpoint while a run is unfinished

Every file is written atomically (temp file in the same folder, fsync, rename, fsync of the folder), so a crash
leaves either the old or the new file, never half of one. What the files hold is defined once, in
:mod:`nasbench_suite.records`. The analysis layer reads only this store (its tidy frames are built in
:mod:`nasbench_suite.analysis.frames`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import StoreError
from .records import SCHEMA_VERSION, EpochMetrics, RunRecord


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
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=json_default) + "\n").encode())


def json_default(o: Any) -> Any:
    """The project's one JSON encoder hook (``json.dumps(..., default=json_default)``): numpy and torch scalars as
    numbers, tuples and sets as lists, paths as text."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def plain(x: Any) -> Any:
    """``x`` as plain JSON data, for writers that cannot store NaN (a report): what :func:`json_default` converts,
    converted, recursively, and NaN as None."""
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [plain(v) for v in x]
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return plain(json_default(x))


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
            return read_record(self.record_path(run_id)).is_done
        except (StoreError, FileNotFoundError):
            return False

    def write_metrics(self, run_id: str, epochs: list[EpochMetrics]) -> None:
        """Rewrite the per-epoch metrics file atomically (it is small: one line per epoch)."""
        lines = "".join(json.dumps(e.to_json(), sort_keys=True, default=json_default) + "\n" for e in epochs)
        atomic_write_bytes(self.metrics_path(run_id), lines.encode())

    def write_record(self, record: RunRecord) -> None:
        """Atomically write a finished run's record."""
        atomic_write_json(self.record_path(record.run_id), record.to_json())

    def run_ids(self) -> list[str]:
        """Ids of every run folder that holds a record file."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.runs_dir.glob("*/record.json"))


def read_record(path: Path) -> RunRecord:
    """Read and validate one record (any schema up to :data:`SCHEMA_VERSION`); a corrupt or foreign file, or one
    whose values have the wrong types, is a :class:`StoreError`."""
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
    try:
        return RunRecord.from_json(rec)
    except ValueError as e:
        raise StoreError(f"run record {path} is malformed ({e})") from None


def read_metrics(path: Path) -> list[EpochMetrics]:
    """The per-epoch lines of a metrics file; a line that is not JSON or not a metrics line is a StoreError."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise StoreError(f"{path}:{n} is not JSON ({e})") from None
            if not isinstance(entry, dict):
                raise StoreError(f"{path}:{n} is not a JSON object (a {type(entry).__name__})")
            try:
                out.append(EpochMetrics.from_json(entry))
            except ValueError as e:
                raise StoreError(f"{path}:{n} is malformed ({e})") from None
    return out
