"""NAS-Bench-201 ``.pth`` file (v1_0 / v1_1) through ``nas_201_api.NASBench201API``."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import BenchmarkError
from ..space import Cell
from .base import Benchmark, BenchResult, check_benchmark_pickle, file_fingerprint
from .protocol import HP, IS_RANDOM, datasets_answerable, official_index, query_api

REQUIRED_KEYS = ("meta_archs", "arch2infos", "evaluated_indexes")
#: Files above this size are the full benchmark; loading one takes a lot of memory, so we say so first.
LARGE_FILE_BYTES = 4 * 1024**3


class _NoCopyDict(dict):
    """A dict that ``copy.deepcopy`` returns as is.

    ``NASBench201API`` deep-copies a dict argument. For the v1_1 file (~28 GB in RAM) that would double the
    peak memory; the dict is ours, freshly loaded and dropped after construction, so sharing it is safe.
    """

    def __deepcopy__(self, memo: dict) -> _NoCopyDict:
        return self


def _corrupt(path: Path, exc: BaseException) -> BenchmarkError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # torch's messages run over several lines
    return BenchmarkError(f"cannot load {path} as a NAS-Bench-201 .pth file (truncated or corrupt?): {reason}")


def _check_pth_pickles(path: Path, head: bytes) -> None:
    """Refuse a ``.pth`` whose pickles import anything but the official files' globals, before torch reads it.

    A zip ``.pth`` (torch >= 1.6) holds its pickle as ``<name>/data.pkl``: every ``.pkl`` member is scanned. A raw
    ``.pth`` (older torch, like the published NB201 files) is five pickles in a row, then raw tensor bytes.
    """
    if head == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name.endswith(".pkl"):
                        with z.open(name) as member:
                            check_benchmark_pickle(path, member)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _corrupt(path, exc) from None
    else:
        with open(path, "rb") as f:
            check_benchmark_pickle(path, f, pickles=5)


def _numpy_safe_globals() -> list:
    """The numpy globals an NB201 file needs, for torch's weights_only unpickler, under numpy 1 and 2 names."""
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    out: list = [np.dtype, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    # dtype objects are rebuilt through their class; numbers, booleans and strings only (no object arrays)
    out += [getattr(np.dtypes, n) for n in getattr(np.dtypes, "__all__", ()) if n not in ("ObjectDType", "VoidDType")]
    return out


def load_nb201_dict(path: Path) -> dict:
    """Load an NB201 ``.pth`` file into its top-level dict, raising BenchmarkError if it is not one."""
    size = path.stat().st_size
    # A .pth starts as a zip (torch >= 1.6) or a raw pickle (older torch); anything else is rejected before
    # the (possibly long) load so that e.g. a text file gets a clear message. A truncated zip still starts
    # with "PK"; zipfile's failure to read it is reported as truncated/corrupt.
    with open(path, "rb") as f:
        head = f.read(2)
    if head != b"PK" and head[:1] != b"\x80":
        raise BenchmarkError(
            f"{path} is not a PyTorch .pth file (expected an NAS-Bench-201 file such as NAS-Bench-201-v1_1-096897.pth)"
        )
    if size > LARGE_FILE_BYTES:
        msg = (
            f"loading {path.name} ({size / 1024**3:.1f} GB): the full NAS-Bench-201 file needs about 28 GB "
            "of RAM (v1_1); a NATS-Bench '-simple' folder answers the same queries one cell at a time"
        )
        # UserWarning, not ResourceWarning: the latter is hidden by Python's default filters.
        warnings.warn(msg, UserWarning, stacklevel=3)
    _check_pth_pickles(path, head)
    import torch

    try:
        # The scan above names a refused global in one line; weights_only=True with the same few numpy globals
        # allowed is the second gate (it also covers a file swapped between the scan and the load).
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise _corrupt(path, exc) from exc
    if not isinstance(data, dict) or any(k not in data for k in REQUIRED_KEYS):
        have = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise BenchmarkError(
            f"{path} is a .pth file but not a NAS-Bench-201 benchmark: expected a dict with keys "
            f"{', '.join(REQUIRED_KEYS)}, found {have}"
        )
    return data


class NB201Benchmark(Benchmark):
    """The NB201 ``.pth`` benchmark; all architectures held in memory, queried under the protocol."""

    name = "nb201"

    def __init__(self, path: str | Path, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self.path = Path(path)
        if not self.path.is_file():
            raise BenchmarkError(f"NAS-Bench-201 file {self.path} does not exist or is not a file")
        from nas_201_api import NASBench201API

        data = _NoCopyDict(load_nb201_dict(self.path))
        try:
            self._api = NASBench201API(data, verbose=False)
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BenchmarkError(f"{self.path} has the NB201 keys but its content is malformed: {exc!r}") from exc
        del data
        self._api.filename = self.path.name  # the API only records it when given a path
        self._where = f"NAS-Bench-201 file {self.path.name}"
        self.datasets = self._detect_datasets()
        self.provenance = (
            f"{self.path.name} (nas_201_api NASBench201API), hp={HP}, is_random={IS_RANDOM}; "
            f"{len(self._api.evaluated_indexes)} of {len(self._api)} architectures evaluated"
        )

    def fingerprint(self) -> str:
        """Hash of the file's first MiB and its size."""
        return file_fingerprint(self.path)

    def official_index(self, cell: Cell) -> int:
        """NB201's index of ``cell``."""
        return official_index(self._api, cell, self._where)

    def _detect_datasets(self) -> tuple[str, ...]:
        # v1_0 and v1_1 differ in coverage, so read what the first evaluated architecture holds at hp=200.
        for index in self._api.evaluated_indexes:
            results = self._api.arch2infos_dict.get(index, {}).get(HP)
            if results is not None:
                found = datasets_answerable(results.get_dataset_names())
                if found:
                    return found
        raise BenchmarkError(f"{self._where} holds no hp={HP} results for any dataset")

    def _query_index(self, index: int, dataset: str) -> BenchResult:
        if index not in self._api.arch2infos_dict:
            raise BenchmarkError(
                f"{self._where}: official index {index} ({self._api.meta_archs[index]}) was not evaluated in this file"
            )
        return query_api(self._api, index, dataset, self._where)

    def _query_uncached(self, cell: Cell, dataset: str) -> BenchResult:
        return self._query_index(self.official_index(cell), dataset)

    def _iter_all(self) -> Iterator[dict[str, BenchResult]]:
        for index in self._api.evaluated_indexes:
            yield {ds: self._query_index(index, ds) for ds in self.datasets}
