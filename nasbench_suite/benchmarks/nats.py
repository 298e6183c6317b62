"""NATS-Bench topology benchmark (``NATS-tss-v1_0-3ffb9-simple`` folder) through ``nats_bench`` in fast mode.

Fast mode reads ``meta.pickle.pbz2`` (the 15,625 arch strings) at start and one ``NNNNNN.pickle.pbz2`` record per
queried cell, so a folder holding only some records (like the test fixture) works for those cells.
"""

from __future__ import annotations

import bz2
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import BenchmarkError
from ..space import NUM_CELLS, Cell
from .base import Benchmark, BenchResult, check_benchmark_pickle, file_fingerprint
from .protocol import HP, IS_RANDOM, QUERIES, official_index, query_api

META_FILE = "meta.pickle.pbz2"
_RECORD = re.compile(r"^(\d+)\.pickle\.pbz2$")


def _check_pbz2(path: Path) -> None:
    """Refuse a ``.pickle.pbz2`` whose pickle imports anything but the official files' globals (BenchmarkError)."""
    try:
        with bz2.open(path, "rb") as f:
            check_benchmark_pickle(path, f)
    except (OSError, EOFError) as exc:  # not bz2, or cut short
        raise BenchmarkError(f"cannot read {path} as a NATS-Bench file (bz2-compressed pickle): {exc}") from None


class NatsBenchmark(Benchmark):
    """A NATS-Bench topology ``-simple`` folder; valid and test accuracies on all three datasets.

    :meth:`optimum` covers the records present in the folder. With the full folder that means reading all
    15,625 records once (minutes); the result is kept in memory for the life of the object.
    """

    name = "nats-tss"

    def __init__(self, path: str | Path, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self.path = Path(path)
        meta = self.path / META_FILE
        if not self.path.is_dir():
            raise BenchmarkError(f"NATS-Bench path {self.path} is not a folder (expected a '*-simple' folder)")
        if not meta.is_file():
            raise BenchmarkError(
                f"{self.path} is not a NATS-Bench topology '-simple' folder: it has no {META_FILE} "
                "(download NATS-tss-v1_0-3ffb9-simple and point at that folder)"
            )
        import nats_bench  # heavy-ish import, only when a NATS folder is actually opened

        _check_pbz2(meta)
        try:
            self._api = nats_bench.create(str(self.path), "tss", fast_mode=True, verbose=False)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, KeyError, AssertionError) as exc:
            raise BenchmarkError(f"cannot read {meta} as a NATS-Bench topology meta file: {exc}") from exc
        if len(self._api) != NUM_CELLS:
            raise BenchmarkError(
                f"{meta} lists {len(self._api)} architectures; a NATS-Bench topology benchmark has {NUM_CELLS}"
            )
        self.datasets = tuple(QUERIES)
        self._where = f"NATS-Bench folder {self.path}"
        n = len(self._record_indices())
        self.provenance = (
            f"{self.path.name} (nats_bench {nats_bench.version()}, fast mode), hp={HP}, is_random={IS_RANDOM}; "
            f"{n} of {NUM_CELLS} records present (optimum taken over these)"
        )

    def fingerprint(self) -> str:
        """Hash of the meta file plus the number of records present (a partial folder has other optima)."""
        return file_fingerprint(self.path / META_FILE, extra=f"records={len(self._record_indices())}".encode())

    def official_index(self, cell: Cell) -> int:
        """NATS-Bench's index of ``cell``."""
        return official_index(self._api, cell, self._where)

    def arch_str(self, index: int) -> str:
        """The arch string NATS-Bench lists at official ``index``."""
        return self._api.meta_archs[index]

    # -- internals ---------------------------------------------------------------------------------------
    def _record_path(self, index: int) -> Path | None:
        # nats_bench accepts both zero-padded and plain names; mirror that so we never disagree with it.
        for name in (f"{index:06d}.pickle.pbz2", f"{index}.pickle.pbz2"):
            if (self.path / name).is_file():
                return self.path / name
        return None

    def _record_indices(self) -> list[int]:
        out = []
        for entry in self.path.iterdir():
            m = _RECORD.match(entry.name)
            if m and int(m.group(1)) < NUM_CELLS:
                out.append(int(m.group(1)))
        return sorted(set(out))

    def _query_index(self, index: int, dataset: str) -> BenchResult:
        record = self._record_path(index)
        if record is None:
            raise BenchmarkError(
                f"{self._where} has no record for official index {index} ({self.arch_str(index)}): "
                f"{index:06d}.pickle.pbz2 is absent; the folder is incomplete"
            )
        if index not in self._api.arch2infos_dict:  # nats_bench is about to unpickle the record: check it first
            _check_pbz2(record)
        try:
            return query_api(self._api, index, dataset, self._where)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise BenchmarkError(f"cannot read NATS-Bench record {record}: {exc}") from exc

    def _query_uncached(self, cell: Cell, dataset: str) -> BenchResult:
        return self._query_index(self.official_index(cell), dataset)

    def _iter_all(self) -> Iterator[dict[str, BenchResult]]:
        api = self._api
        for index in self._record_indices():
            loaded_before = index in api.arch2infos_dict
            try:
                yield {ds: self._query_index(index, ds) for ds in self.datasets}
            finally:
                # A loaded record takes ~4 MB inside nats_bench and is never released; over the full folder
                # that is ~60 GB, so drop what this scan loaded (ordinary queries keep theirs).
                if not loaded_before:
                    api.arch2infos_dict.pop(index, None)
                    api.evaluated_indexes.discard(index)
