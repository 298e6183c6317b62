"""The embedded benchmark: NAS-Bench-201 test accuracies of all 15,625 cells, shipped inside the package.

``nb201_test_accuracy.npz`` (about 100 KB) holds, per official NB201 index, the test accuracy on CIFAR-10
(``cifar10``, ``ori-test``), CIFAR-100 and ImageNet16-120 (``x-test``) from the NATS-Bench topology benchmark
``NATS-tss-v1_0-3ffb9``, 200 epochs (= NB201 ``hp='200'``), mean over the benchmark's training seeds
(``is_random=False``); MIT licence, Xuanyi Dong. See ``nb201_test_accuracy.txt`` beside it for the provenance.

The values are stored as integers (accuracy x :data:`SCALE`), which holds the source's four decimals exactly, and
``cell_index[i]`` is the :attr:`Cell.index` of official index ``i`` (the official order is the benchmark's
``meta_archs`` list, not an enumeration). There are no validation accuracies: ``valid`` is always None.
``scripts/build_embedded_data.py`` rebuilds the file from the reference CSV.

Runs stored before this table existed name the previous embedded benchmark (AnalogNAS-Bench's CIFAR-10 table);
:data:`LEGACY_BENCHMARKS` says what such a record's numbers are, so reports can label them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import BenchmarkError
from ..space import NUM_CELLS, Cell
from .base import ALL_DATASETS, Benchmark, BenchResult, file_fingerprint

DATA_FILE = Path(__file__).with_name("nb201_test_accuracy.npz")
#: accuracy (%) x SCALE is an exact integer for every value of the source (four decimals)
SCALE = 10_000
#: our dataset name -> column of the reference CSV; the npz's ``test`` columns are in this order
COLUMNS = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "ImageNet16-120": "imagenet16_120_test"}

PROVENANCE = (
    "NAS-Bench-201 test accuracy embedded in nas-suite (nb201_test_accuracy.npz): NATS-Bench topology benchmark "
    "NATS-tss-v1_0-3ffb9, 200 epochs (hp='200'), mean over training seeds (is_random=False); cifar10 ori-test, "
    "cifar100 and ImageNet16-120 x-test; MIT licence, Xuanyi Dong; test only, valid=None"
)

#: Names of earlier embedded benchmarks -> what their numbers are (old records still load; reports say this).
LEGACY_BENCHMARKS = {
    "embedded-analognasbench": (
        "the old embedded table: AnalogNAS-Bench CIFAR-10 numbers (own training recipe), NOT NAS-Bench-201"
    ),
}


@functools.lru_cache(maxsize=2)  # read-only data: one read per process
def load_table(path: Path = DATA_FILE) -> np.ndarray:
    """Test accuracies (%) as a read-only float64 array ``(15625, 3)``: row = ``Cell.index``, columns as
    :data:`COLUMNS`. BenchmarkError if the file is missing or not the expected table."""
    try:
        with np.load(path, allow_pickle=False) as z:
            cell_index, scaled = z["cell_index"], z["test"]
    except Exception as exc:  # noqa: BLE001 - any read failure means a damaged install; say which file
        raise BenchmarkError(f"cannot read the embedded benchmark {path}: {exc!r}; reinstall nas-suite") from exc
    if (
        cell_index.shape != (NUM_CELLS,)
        or scaled.shape != (NUM_CELLS, len(COLUMNS))
        or not np.array_equal(np.sort(cell_index), np.arange(NUM_CELLS))
    ):
        raise BenchmarkError(f"{path} is not the expected table of {NUM_CELLS} cells x {len(COLUMNS)} datasets")
    table = np.empty((NUM_CELLS, len(COLUMNS)), dtype=np.float64)
    table[cell_index] = scaled / SCALE  # exact: the nearest double to each four-decimal source value
    table.setflags(write=False)
    return table


class EmbeddedBenchmark(Benchmark):
    """NB201 test accuracy on CIFAR-10, CIFAR-100 and ImageNet16-120 for every cell (``valid=None``)."""

    name = "embedded-nb201"
    datasets = ALL_DATASETS
    metrics = ("test",)
    provenance = PROVENANCE

    def __init__(self, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self.path = DATA_FILE
        self._table: np.ndarray | None = None

    @property
    def table(self) -> np.ndarray:
        """``table[Cell.index, j]``: test accuracy on ``self.datasets[j]`` (read from disk on first use)."""
        if self._table is None:
            self._table = load_table(self.path)
        return self._table

    def fingerprint(self) -> str:
        """Content hash of the data file."""
        if not self.path.is_file():
            raise BenchmarkError(f"the embedded benchmark {self.path} is missing; reinstall nas-suite")
        return file_fingerprint(self.path)

    def _query_uncached(self, cell: Cell, dataset: str) -> BenchResult:
        return BenchResult(valid=None, test=float(self.table[cell.index, self.datasets.index(dataset)]))

    def _iter_all(self) -> Iterator[dict[str, BenchResult]]:
        for row in self.table:
            yield {ds: BenchResult(valid=None, test=float(v)) for ds, v in zip(self.datasets, row)}

    def _compute_optima(self) -> dict[str, BenchResult]:
        # the whole table is one array: a column max, not 15,625 row objects
        best = self.table.max(axis=0)
        return {ds: BenchResult(valid=None, test=float(v)) for ds, v in zip(self.datasets, best)}
