"""The benchmark interface: look a cell up, get its valid/test accuracy (%) on a dataset.

Every adapter answers in our :class:`~nasbench_suite.space.Cell` terms; official benchmark indices stay inside
the adapter. Queries are cached per instance (LRU) and the optimum per dataset is computed once.
"""

from __future__ import annotations

import functools
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..data.pickles import NUMPY_ARRAY_GLOBALS, unlisted_global
from ..errors import BenchmarkError
from ..space import Cell, as_cell

#: Every dataset a benchmark may hold, canonical spelling.
ALL_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")

_ALIASES = {name.casefold().replace("_", "-"): name for name in ALL_DATASETS}

#: How much of a file :func:`file_fingerprint` hashes: enough to tell benchmark versions apart, cheap for 28 GB.
FINGERPRINT_BYTES = 1 << 20


#: Every global the official benchmark pickles import (NATS-Bench records: numpy scalars and dtypes and
#: OrderedDict; NB201 ``.pth``: the same through torch.save, plus ``_codecs.encode`` of protocol 2 and torch's tensor
#: rebuilders), and nothing that can run code. Anything else in a benchmark file is refused before it is unpickled.
BENCHMARK_PICKLE_GLOBALS = NUMPY_ARRAY_GLOBALS | frozenset(
    {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")}
    | {
        ("torch", f"{kind}Storage")
        for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
    }
)


def check_benchmark_pickle(path: Path, stream: bytes | BinaryIO, pickles: int = 1) -> None:
    """Refuse ``path`` (its pickle ``stream``, decompressed) if it imports a global outside the official files'.

    One line naming the file and the global, as a :class:`BenchmarkError`; a stream that is not a pickle is one
    too. Nothing in the stream is executed.
    """
    try:
        bad = unlisted_global(stream, BENCHMARK_PICKLE_GLOBALS, pickles)
    except Exception as exc:  # noqa: BLE001 - pickletools raises ValueError, but also EOFError/IndexError on junk
        raise BenchmarkError(f"cannot read {path} as a benchmark pickle (truncated or corrupt?): {exc}") from None
    if bad is not None:
        raise BenchmarkError(
            f"{path} refers to {bad}, which no official benchmark file holds: refusing to load it "
            "(unpickling it could run code)"
        )


@dataclass(frozen=True)
class BenchResult:
    """Accuracies in percent; ``valid`` is None when the benchmark has no validation number."""

    valid: float | None
    test: float


def canonical_dataset(name: str, available: Sequence[str] = ALL_DATASETS) -> str:
    """Return the canonical dataset name (case and ``_``/``-`` insensitive) or raise BenchmarkError.

    ``available`` is what one benchmark holds, so the message can say what the user may ask for.
    """
    canon = _ALIASES.get(str(name).casefold().replace("_", "-"))
    if canon is None or canon not in available:
        raise BenchmarkError(f"dataset {name!r} is not in this benchmark; it has {', '.join(available)}")
    return canon


def file_fingerprint(path: Path, extra: bytes = b"") -> str:
    """A short content hash of ``path``: sha256 of its first MiB, its size and ``extra`` (16 hex digits).

    Reading only the head keeps this instant even for the 28 GB NB201 file, while the size still separates
    truncated copies from whole ones.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
    h.update(str(os.path.getsize(path)).encode())
    h.update(extra)
    return h.hexdigest()[:16]


class Benchmark(ABC):
    """A source of per-cell accuracies.

    Subclasses set ``name``, ``provenance`` (what file/package and which query settings) and ``datasets``, and
    implement :meth:`_query_uncached`, :meth:`_iter_all` and :meth:`fingerprint`.
    """

    name: str
    provenance: str
    datasets: tuple[str, ...]
    #: the accuracies the benchmark holds per cell; a test-only table sets ``("test",)``
    metrics: tuple[str, ...] = ("valid", "test")

    def __init__(self, cache_size: int = 4096) -> None:
        # A per-instance cache (not functools.lru_cache on the method) so that benchmarks do not share or
        # keep each other alive through a class-level cache.
        self._query_cached = functools.lru_cache(maxsize=cache_size)(self._query_uncached)
        self._optima: dict[str, BenchResult] | None = None

    # -- public API ------------------------------------------------------------------------------------
    def query(self, cell: Cell | str | Sequence[int], dataset: str) -> BenchResult:
        """Valid and test accuracy (%) of ``cell`` on ``dataset`` under the project's query protocol.

        ``cell`` may be a Cell, an arch string or 6 op ids. Raises BenchmarkError for a dataset or cell the
        benchmark does not hold, ArchStringError for a malformed cell.
        """
        return self._query_cached(as_cell(cell), canonical_dataset(dataset, self.datasets))

    def query_all(self, cell: Cell | str | Sequence[int]) -> dict[str, BenchResult]:
        """:meth:`query` on every dataset this benchmark holds."""
        c = as_cell(cell)
        return {ds: self.query(c, ds) for ds in self.datasets}

    def optimum(self, dataset: str) -> BenchResult:
        """Best valid and best test accuracy over all cells held, each maximised independently.

        Computed for all datasets in one pass on first use, then kept in memory.
        """
        ds = canonical_dataset(dataset, self.datasets)
        if self._optima is None:
            self._optima = self._compute_optima()
        return self._optima[ds]

    @abstractmethod
    def fingerprint(self) -> str:
        """A short content hash identifying the benchmark file(s); cheap to compute."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provenance})"

    # -- for subclasses ----------------------------------------------------------------------------------
    @abstractmethod
    def _query_uncached(self, cell: Cell, dataset: str) -> BenchResult:
        """Answer one query; ``dataset`` is already canonical and in ``self.datasets``."""

    @abstractmethod
    def _iter_all(self) -> Iterator[dict[str, BenchResult]]:
        """Yield ``{dataset: BenchResult}`` for every cell the benchmark holds (used by :meth:`optimum`)."""

    def _compute_optima(self) -> dict[str, BenchResult]:
        best_valid: dict[str, float | None] = {ds: None for ds in self.datasets}
        best_test: dict[str, float | None] = {ds: None for ds in self.datasets}
        for row in self._iter_all():
            for ds, r in row.items():
                if r.valid is not None and (best_valid[ds] is None or r.valid > best_valid[ds]):
                    best_valid[ds] = r.valid
                if best_test[ds] is None or r.test > best_test[ds]:
                    best_test[ds] = r.test
        missing = [ds for ds in self.datasets if best_test[ds] is None]
        if missing:
            raise BenchmarkError(f"{self.name}: no cell has results for {', '.join(missing)}; cannot take an optimum")
        return {ds: BenchResult(valid=best_valid[ds], test=float(best_test[ds])) for ds in self.datasets}
