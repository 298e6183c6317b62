"""An embedded CIFAR-10 table for machines without benchmark files: AnalogNAS-Bench's digital accuracies.

The PyPI package ``analog-nasbench`` ships ``analognasbench/data.anb``, a pickle of one record per NB201 cell.
Its own module cannot be imported here (it needs ``pkg_resources``), and a pickle must not be loaded with the
full unpickler anyway, so the file is read as data with :class:`_RestrictedUnpickler`.

These are AnalogNAS-Bench numbers (their own CIFAR-10 training runs), not NAS-Bench-201's: the noise-free
``baseline_accuracy`` correlates ~0.999 with NB201's CIFAR-10 test accuracy over all 15,625 cells, but the
values differ (e.g. the all-skip cell scores ~60.8 here vs 54.3 in NB201). The file has no validation number,
so ``valid`` is None.
"""

from __future__ import annotations

import functools

import importlib.metadata
import pickle
from pathlib import Path
from typing import Iterator

from ..errors import BenchmarkError
from ..space import NUM_CELLS, NUM_EDGES, NUM_OPS, Cell
from .base import BenchResult, Benchmark, file_fingerprint

DISTRIBUTION = "analog-nasbench"
DATA_FILE = "analognasbench/data.anb"
#: The field used: the digital (no analog noise, no quantisation, no drift) CIFAR-10 accuracy.
METRIC = "baseline_accuracy"

# AnalogNAS-Bench op code -> our op id. Theirs: 0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool;
# ours: 0 none, 1 skip, 2 conv1x1, 3 conv3x3, 4 avgpool. Verified: of all 120 x 720 op/edge relabellings
# this one (with the edge order below) correlates best with NB201 (r = 0.99936; the runner-up is 0.994).
ANALOG_TO_OUR_OP: tuple[int, ...] = (1, 0, 3, 2, 4)
# Our edge e (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) is their tuple position ANALOG_POS_OF_OUR_EDGE[e]:
# their edge order is 1<-0, 2<-0, 3<-0, 2<-1, 3<-1, 3<-2.
ANALOG_POS_OF_OUR_EDGE: tuple[int, ...] = (0, 1, 3, 2, 4, 5)


class _Record:
    """Inert stand-in for ``analognasbench.data.Architecture``: unpickling only fills its ``__dict__``."""


class _Drift:
    """Inert stand-in for ``analognasbench.data.DriftMeasurement``."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the two record classes of ``data.anb``, to inert local classes.

    The file needs nothing else (its numbers are plain floats and tuples, built by opcodes, not globals);
    any other global means the file is not what we expect and is refused before anything can run.
    """

    ALLOWED = {
        ("analognasbench.data", "Architecture"): _Record,
        ("analognasbench.data", "DriftMeasurement"): _Drift,
    }

    def find_class(self, module: str, name: str) -> type:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise BenchmarkError(
                f"the embedded table refers to {module}.{name}, which is not allowed; "
                "the analog-nasbench data file is not the expected one"
            ) from None


def analog_to_cell(code: tuple[int, ...]) -> Cell:
    """Our :class:`Cell` for an AnalogNAS-Bench architecture tuple."""
    return Cell(tuple(ANALOG_TO_OUR_OP[code[ANALOG_POS_OF_OUR_EDGE[e]]] for e in range(NUM_EDGES)))


def data_path() -> Path:
    """Where the installed ``analog-nasbench`` keeps ``data.anb``; BenchmarkError if it is not installed."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise BenchmarkError(
            f"the embedded benchmark needs the '{DISTRIBUTION}' package (pip install {DISTRIBUTION}), "
            "or pass a benchmark path"
        ) from None
    path = Path(str(dist.locate_file(DATA_FILE)))
    if not path.is_file():
        raise BenchmarkError(f"'{DISTRIBUTION}' is installed but {path} is missing; reinstall it")
    return path


@functools.lru_cache(maxsize=2)  # read-only data: one parse per process, not one per run (~7 s each)
def load_table(path: Path) -> dict[int, float]:
    """Read ``data.anb`` into ``{Cell.index: CIFAR-10 accuracy}``, checking it covers all 15,625 cells."""
    try:
        with open(path, "rb") as f:
            raw = _RestrictedUnpickler(f).load()
    except BenchmarkError:
        raise
    except Exception as exc:  # any unpickling failure means a damaged file; say which file
        raise BenchmarkError(f"cannot read the embedded table {path}: {exc!r}") from exc
    if not isinstance(raw, dict) or len(raw) != NUM_CELLS:
        raise BenchmarkError(f"{path} is not the expected table of {NUM_CELLS} architectures")
    table: dict[int, float] = {}
    for code, rec in raw.items():
        value = getattr(rec, METRIC, None)
        if (
            not isinstance(code, tuple)
            or len(code) != NUM_EDGES
            or any(not isinstance(o, int) or not 0 <= o < NUM_OPS for o in code)
            or not isinstance(value, float)
        ):
            raise BenchmarkError(f"{path}: unexpected record {code!r} -> {value!r}")
        table[analog_to_cell(code).index] = value
    if len(table) != NUM_CELLS:
        raise BenchmarkError(f"{path}: records do not map one-to-one onto the {NUM_CELLS} cells")
    return table


class EmbeddedBenchmark(Benchmark):
    """CIFAR-10 only, test accuracy only (``valid=None``), from AnalogNAS-Bench; loaded lazily, once."""

    name = "embedded-analognasbench"
    datasets = ("cifar10",)
    metrics = ("test",)

    def __init__(self, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self.path = data_path()
        version = importlib.metadata.version(DISTRIBUTION)
        self.provenance = (
            f"AnalogNAS-Bench CIFAR-10 '{METRIC}' (digital, noise-free) from PyPI {DISTRIBUTION} {version} "
            f"({DATA_FILE}); NOT NAS-Bench-201 numbers (own training recipe; ~0.999 correlated with NB201 "
            "cifar10 test); test only, valid=None"
        )
        self._table: dict[int, float] | None = None

    @property
    def table(self) -> dict[int, float]:
        """``{Cell.index: accuracy}`` for all 15,625 cells (read from disk on first use)."""
        if self._table is None:
            self._table = load_table(self.path)
        return self._table

    def fingerprint(self) -> str:
        """Hash of the data file's first MiB and its size."""
        return file_fingerprint(self.path)

    def _query_uncached(self, cell: Cell, dataset: str) -> BenchResult:
        return BenchResult(valid=None, test=self.table[cell.index])

    def _iter_all(self) -> Iterator[dict[str, BenchResult]]:
        for value in self.table.values():
            yield {"cifar10": BenchResult(valid=None, test=value)}
